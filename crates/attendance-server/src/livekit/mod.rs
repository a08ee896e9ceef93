//! How LiveKit talks to us, as pure functions: API keys and the tokens signed
//! with them ([`tokens`]), webhooks verified and decoded as LiveKit's own SDKs
//! do ([`webhook`]), and what each webhook means for the stored facts
//! ([`facts`]). No I/O.

pub mod facts;
pub mod tokens;
pub mod webhook;

pub use facts::facts_of;
pub use tokens::{KeyRing, Principal, Role, RoleRequest, TokenError, TokenRequest};
pub use webhook::{WebhookError, WebhookEvent};
