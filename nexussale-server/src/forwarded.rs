//! [`TrustedProxies`]: the client's address behind a load balancer, from `X-Forwarded-For` or
//! `Forwarded`, believed only when the connection comes from such a proxy.

use std::net::IpAddr;

use http::HeaderMap;
use ipnet::IpNet;

/// The proxies whose forwarding headers are believed (`--trusted-proxy CIDR`). Empty (the
/// default): the connection's peer is the client, whatever the headers say.
///
/// Behind trusted proxies the client is the right-most address of `X-Forwarded-For` (or, when
/// that header is absent, of `Forwarded`'s `for=`) that is not itself a trusted proxy: each proxy
/// appends the address it saw, so everything left of the first untrusted hop is the client's own
/// say-so. A proxy that writes only `Forwarded` must drop a client's `X-Forwarded-For`.
///
/// ```
/// use http::HeaderMap;
/// use nexussale_server::TrustedProxies;
///
/// let proxies = TrustedProxies::new(["10.0.0.0/8".parse().unwrap()]);
/// let mut headers = HeaderMap::new();
/// headers.insert("x-forwarded-for", "203.0.113.7, 10.0.0.3".parse().unwrap());
/// // From the load balancer: the client it names.
/// assert_eq!(proxies.client("10.0.0.2".parse().unwrap(), &headers), "203.0.113.7".parse::<std::net::IpAddr>().unwrap());
/// // From anyone else: the peer, whatever the header says.
/// assert_eq!(proxies.client("198.51.100.1".parse().unwrap(), &headers), "198.51.100.1".parse::<std::net::IpAddr>().unwrap());
/// ```
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
}

impl TrustedProxies {
    /// Proxies in `networks`.
    pub fn new(networks: impl IntoIterator<Item = IpNet>) -> Self {
        Self {
            networks: networks.into_iter().collect(),
        }
    }

    /// Whether any proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.networks.iter().any(|network| network.contains(&ip))
    }

    /// The client of a request that came from `peer` with `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if self.networks.is_empty() || !self.trusts(peer) {
            return peer;
        }
        let forwarded_for = headers.get_all("x-forwarded-for");
        if forwarded_for.iter().next().is_some() {
            let hops = forwarded_for
                .iter()
                .flat_map(|value| value.to_str().unwrap_or("?").split(','))
                .map(|hop| parse_hop(hop.trim()));
            self.walk(peer, hops)
        } else {
            let hops = headers
                .get_all(http::header::FORWARDED)
                .iter()
                .flat_map(|value| value.to_str().unwrap_or("for=?").split(','))
                .map(forwarded_for_of);
            self.walk(peer, hops)
        }
    }

    /// The right-most of `hops` (each proxy's record of whom it heard from) that is not a
    /// trusted proxy; the last proxy when nothing further left can be believed.
    fn walk(&self, peer: IpAddr, hops: impl DoubleEndedIterator<Item = Option<IpAddr>>) -> IpAddr {
        let mut client = peer;
        for hop in hops.rev() {
            match hop {
                // A hop that is not an address: nothing left of it can be believed; the last
                // proxy that handed it on is the client as far as anyone can tell.
                None => return client,
                Some(ip) if self.trusts(ip) => client = ip,
                Some(ip) => return canonical(ip),
            }
        }
        client
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// One `Forwarded` element's `for=` address (RFC 7239): `for=192.0.2.60`,
/// `for="[2001:db8::1]:4711"`; an element without `for=` or with an obfuscated one is no address.
fn forwarded_for_of(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("for")
            .then(|| parse_hop(value.trim().trim_matches('"')))
            .flatten()
    })
}

/// `192.0.2.1`, `192.0.2.1:80`, `2001:db8::1`, `[2001:db8::1]`, `[2001:db8::1]:80`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    if let Some(rest) = hop.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    let (host, port) = hop.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn only_a_trusted_peer_is_believed_and_only_up_to_the_first_untrusted_hop() {
        let proxies = TrustedProxies::new(["10.0.0.0/8".parse().unwrap()]);
        let spoofed = headers(&[("x-forwarded-for", "1.1.1.1")]);
        // An untrusted peer's header is ignored.
        assert_eq!(
            proxies.client(ip("203.0.113.9"), &spoofed),
            ip("203.0.113.9")
        );
        // A trusted peer's is read from the right.
        assert_eq!(proxies.client(ip("10.0.0.2"), &spoofed), ip("1.1.1.1"));
        let chain = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.0.0.5")]);
        assert_eq!(proxies.client(ip("10.0.0.2"), &chain), ip("198.51.100.7"));
        // Two headers are one list.
        let split = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "198.51.100.7"),
        ]);
        assert_eq!(proxies.client(ip("10.0.0.2"), &split), ip("198.51.100.7"));
        // Garbage stops the walk at the last proxy.
        let garbage = headers(&[("x-forwarded-for", "6.6.6.6, nonsense, 10.0.0.5")]);
        assert_eq!(proxies.client(ip("10.0.0.2"), &garbage), ip("10.0.0.5"));
        // No header: the proxy itself.
        assert_eq!(
            proxies.client(ip("10.0.0.2"), &HeaderMap::new()),
            ip("10.0.0.2")
        );
        // Nothing trusted: the peer, always.
        assert_eq!(
            TrustedProxies::default().client(ip("10.0.0.2"), &spoofed),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn forwarded_is_read_when_there_is_no_x_forwarded_for() {
        let proxies =
            TrustedProxies::new(["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()]);
        let forwarded = headers(&[(
            "forwarded",
            "for=6.6.6.6, for=\"[2001:db8::1]:4711\";proto=https, for=10.0.0.7:80",
        )]);
        assert_eq!(proxies.client(ip("::1"), &forwarded), ip("2001:db8::1"));
        let obfuscated = headers(&[("forwarded", "for=_hidden, for=10.0.0.7")]);
        assert_eq!(proxies.client(ip("10.0.0.2"), &obfuscated), ip("10.0.0.7"));
        // A mapped peer address counts as the IPv4 one.
        assert_eq!(
            proxies.client(
                ip("::ffff:10.0.0.2"),
                &headers(&[("x-forwarded-for", "1.2.3.4")])
            ),
            ip("1.2.3.4")
        );
    }
}
