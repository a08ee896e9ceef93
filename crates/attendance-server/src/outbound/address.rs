//! Where webhooks may go. Unless private endpoints are allowed, an endpoint
//! whose host is or resolves to a loopback, link-local, private, shared
//! (CGNAT), unspecified, multicast or otherwise non-public address is
//! refused when registered, and the same check runs again at every
//! connection (a resolver that drops such addresses), so a name that
//! resolves differently later cannot reach inside the network either.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Longest endpoint URL accepted.
pub const MAX_URL_BYTES: usize = 2048;

/// Whether webhooks must not go to `ip`.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => private_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => private_v4(v4),
            None => private_v6(v6),
        },
    }
}

fn private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0                              // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 240 // reserved
}

fn private_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link-local
        || (first & 0xffc0) == 0xfec0 // site-local (deprecated)
        || first == 0x2001 && ip.segments()[1] == 0x0db8 // documentation
        || ip.to_ipv4().is_some_and(private_v4) // IPv4-compatible
}

/// Checks an endpoint URL: absolute `http`/`https` with a host, at most
/// [`MAX_URL_BYTES`], no fragment; unless `allow_private`, its host must
/// resolve, and only to public addresses. The error says why, for people.
pub async fn check_url(url: &str, allow_private: bool) -> Result<reqwest::Url, String> {
    if url.len() > MAX_URL_BYTES {
        return Err(format!("url must be at most {MAX_URL_BYTES} bytes"));
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("url `{url}` is not valid: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("url must start with https:// (or http://)".into());
    }
    if parsed.fragment().is_some() {
        return Err("url must not have a #fragment".into());
    }
    let host = parsed
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or("url must name a host")?;
    if allow_private {
        return Ok(parsed);
    }
    let port = parsed.port_or_known_default().unwrap_or(443);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("the url's host `{host}` does not resolve: {e}"))?
        .collect();
    if let Some(private) = addresses.iter().find(|a| is_private(a.ip())) {
        return Err(format!(
            "the url's host `{host}` resolves to {}, a loopback, link-local or private address; \
             such endpoints are refused unless the service runs with --allow-private-endpoints",
            private.ip()
        ));
    }
    if addresses.is_empty() {
        return Err(format!("the url's host `{host}` does not resolve"));
    }
    Ok(parsed)
}

/// Refuses a URL whose host is a private IP literal (names go through
/// [`PublicOnly`], which the HTTP client does not consult for literals).
pub fn literal_is_private(url: &reqwest::Url) -> bool {
    url.host_str()
        .map(|host| host.trim_start_matches('[').trim_end_matches(']'))
        .and_then(|host| host.parse::<IpAddr>().ok())
        .is_some_and(is_private)
}

/// A resolver for the HTTP client that keeps public addresses only.
pub struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let public: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| !is_private(a.ip()))
                .collect();
            if public.is_empty() {
                let refusal = format!("`{host}` resolves to no public address");
                return Err(refusal.into());
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn private_addresses_are_told_apart_from_public_ones() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_private(ip(private)), "{private}");
        }
        for public in [
            "93.184.215.14",
            "8.8.8.8",
            "2606:4700:4700::1111",
            "100.128.0.1",
        ] {
            assert!(!is_private(ip(public)), "{public}");
        }
    }

    #[tokio::test]
    async fn urls_are_checked_before_any_lookup() {
        assert!(check_url("ftp://example.org/x", true).await.is_err());
        assert!(check_url("not a url", true).await.is_err());
        assert!(check_url("https://example.org/x#frag", true).await.is_err());
        assert!(check_url("http://127.0.0.1:9/hook", true).await.is_ok());
        let refused = check_url("http://127.0.0.1:9/hook", false)
            .await
            .unwrap_err();
        assert!(refused.contains("--allow-private-endpoints"), "{refused}");
        assert!(check_url("http://[::1]/hook", false).await.is_err());
        assert!(check_url("http://localhost/hook", false).await.is_err());
        assert!(check_url("https://93.184.215.14/hook", false).await.is_ok());
    }
}
