//! Both `sqlx::migrate!` (the migrations) and `src/http/assets.rs` (the pages
//! in `www/`, with the built tracker in `www/pkg`) embed files at compile
//! time: rebuild when any of them changes.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
    println!("cargo:rerun-if-changed=../../www");
}
