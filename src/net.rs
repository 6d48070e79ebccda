//! Who the client is, for every limit keyed by address: the peer of the TCP connection,
//! or, behind a proxy the operator trusts, the address that proxy reports.
//!
//! A proxy appends the address it received the request from to `Forwarded` (RFC 7239)
//! or `X-Forwarded-For`. Anyone can write those headers, so they are read only when the
//! peer is a trusted proxy, and then from the right: the client is the right-most
//! address that is not itself a trusted proxy. IPv6 addresses count by their /64.

use axum::http::HeaderMap;
use std::net::IpAddr;

/// Addresses and networks (`10.0.0.0/8`, `::1`) whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Vec<(IpAddr, u8)>,
}

impl TrustedProxies {
    /// Parses a comma-separated list; an error names the entry that is not an address.
    pub fn parse(list: &str) -> Result<TrustedProxies, String> {
        let mut nets = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (address, prefix) = match entry.split_once('/') {
                Some((address, prefix)) => (address, Some(prefix)),
                None => (entry, None),
            };
            let address: IpAddr = address.parse().map_err(|_| format!("`{entry}` is not an address or network"))?;
            let full = if address.is_ipv4() { 32 } else { 128 };
            let prefix = match prefix {
                Some(prefix) => prefix.parse::<u8>().ok().filter(|p| *p <= full),
                None => Some(full),
            }
            .ok_or_else(|| format!("`{entry}` has a prefix length that does not fit its address"))?;
            nets.push((address, prefix));
        }
        Ok(TrustedProxies { nets })
    }

    /// Whether `address` is one of the trusted proxies.
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = unmapped(address);
        self.nets.iter().any(|(net, prefix)| same_network(*net, address, *prefix))
    }

    /// Whether none is trusted (headers are never read).
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }
}

/// The client's address as limits should count it.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    limit_key(forwarded_client(peer, headers, trusted))
}

fn forwarded_client(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    if trusted.is_empty() || !trusted.contains(peer) {
        return peer;
    }
    let hops = forwarded_hops(headers);
    let mut client = peer;
    // From the right: each hop was reported by the one after it, trusted so far.
    for hop in hops.iter().rev() {
        match hop {
            Some(address) => {
                client = *address;
                if !trusted.contains(*address) {
                    break;
                }
            }
            // An unreadable entry (`unknown`, an obfuscated name): the trusted proxy
            // that wrote it is as far as we can see.
            None => break,
        }
    }
    client
}

/// The addresses a request passed through, left (the first) to right, from
/// `Forwarded` if present, else `X-Forwarded-For`; `None` for an entry that is no
/// address.
fn forwarded_hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let forwarded: Vec<&str> = headers.get_all("forwarded").iter().filter_map(|v| v.to_str().ok()).collect();
    if !forwarded.is_empty() {
        return forwarded
            .iter()
            .flat_map(|value| value.split(','))
            .map(|element| {
                element.split(';').find_map(|pair| {
                    let (key, value) = pair.split_once('=')?;
                    key.trim().eq_ignore_ascii_case("for").then(|| parse_node(value.trim()))?
                })
            })
            .collect();
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|entry| parse_node(entry.trim()))
        .collect()
}

/// An address from `192.0.2.1`, `"[2001:db8::1]:4711"`, `192.0.2.1:80` or `2001:db8::1`.
fn parse_node(text: &str) -> Option<IpAddr> {
    let text = text.trim_matches('"');
    if let Ok(address) = text.parse() {
        return Some(address);
    }
    if let Some(rest) = text.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    text.rsplit_once(':')?.0.parse().ok()
}

/// The address that limits count against: IPv4 as it is, IPv6 by its /64 (what one
/// household or host is usually given), so an attacker cannot rotate through the
/// addresses of one network to get a fresh budget each time.
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match unmapped(ip) {
        IpAddr::V6(v6) => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            IpAddr::V6(segments.into())
        }
        v4 => v4,
    }
}

/// An IPv4 peer on a dual-stack socket as the IPv4 address it is.
fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn same_network(net: IpAddr, address: IpAddr, prefix: u8) -> bool {
    match (net, address) {
        (IpAddr::V4(net), IpAddr::V4(address)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(net) & mask == u32::from(address) & mask
        }
        (IpAddr::V6(net), IpAddr::V6(address)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(net) & mask == u128::from(address) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn headers_are_believed_only_from_a_trusted_proxy_and_read_from_the_right() {
        let trusted = TrustedProxies::parse("10.0.0.0/8, ::1").unwrap();
        let xff = headers(&[("x-forwarded-for", "198.51.100.7, 203.0.113.9, 10.0.0.2")]);
        // The peer is trusted, so is the proxy before it; 203.0.113.9 is the client
        // (198.51.100.7 is whatever the client claimed, and not believed).
        assert_eq!(client_address(ip("10.0.0.1"), &xff, &trusted), ip("203.0.113.9"));
        // The same header from an untrusted peer is ignored.
        assert_eq!(client_address(ip("192.0.2.1"), &xff, &trusted), ip("192.0.2.1"));
        // No trusted proxies: never read.
        assert_eq!(client_address(ip("10.0.0.1"), &xff, &TrustedProxies::default()), ip("10.0.0.1"));
        // RFC 7239, with quoted IPv6 and ports; it wins over X-Forwarded-For.
        let forwarded = headers(&[
            ("forwarded", r#"for=192.0.2.60;proto=http, for="[2001:db8:cafe::17]:4711""#),
            ("x-forwarded-for", "198.51.100.1"),
        ]);
        assert_eq!(client_address(ip("::1"), &forwarded, &trusted), ip("2001:db8:cafe::"));
        // An unreadable hop stops the walk at the proxy that wrote it.
        let unknown = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(client_address(ip("10.0.0.1"), &unknown, &trusted), ip("10.0.0.1"));
    }

    #[test]
    fn trusted_lists_parse_and_refuse_nonsense() {
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        let list = TrustedProxies::parse("127.0.0.1, 172.16.0.0/12, fd00::/8").unwrap();
        assert!(list.contains(ip("172.20.1.1")) && !list.contains(ip("172.32.0.1")));
        assert!(list.contains(ip("fd12::1")) && list.contains(ip("::ffff:127.0.0.1")));
        assert!(TrustedProxies::parse("proxy.local").is_err());
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_bit_network() {
        assert_eq!(limit_key(ip("2001:db8:1:2:aaaa::1")), limit_key(ip("2001:db8:1:2:bbbb::2")));
        assert_ne!(limit_key(ip("2001:db8:1:2:aaaa::1")), limit_key(ip("2001:db8:1:3::1")));
        assert_eq!(limit_key(ip("192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(limit_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"), "an IPv4 peer on a dual-stack socket");
    }
}
