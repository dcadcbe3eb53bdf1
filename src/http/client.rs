//! Who the client is behind a reverse proxy: the address in the one header the proxy writes
//! (`--trusted-proxy-header`: `X-Forwarded-For` by default, or `Forwarded` (RFC 7239), or
//! `X-Real-IP`) when, and only when, the connection comes from a trusted proxy
//! (`--trusted-proxy`). Anyone else could write those headers: from an untrusted peer they
//! are ignored, and the peer is the client. Behind the proxy, every other forwarding header
//! is the client's own words too: a proxy that appends to `X-Forwarded-For` passes a
//! client's `Forwarded` through untouched, so reading that one first let a client name its
//! own address.

use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use poem::http::HeaderMap;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use tracing::Instrument;

/// An address block: an address and how many of its leading bits a member shares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    bits: u8,
}

impl FromStr for Cidr {
    type Err = String;

    /// `10.0.0.0/8`, `2001:db8::/32`, or one address (`10.0.0.5`, all its bits).
    fn from_str(text: &str) -> Result<Cidr, String> {
        let text = text.trim();
        let (address, bits) = text.split_once('/').unwrap_or((text, ""));
        let network: IpAddr = address
            .parse()
            .map_err(|_| format!("{text:?} is not an address or block (10.0.0.0/8, 2001:db8::/32)"))?;
        let most = if network.is_ipv4() { 32 } else { 128 };
        let bits = if bits.is_empty() {
            most
        } else {
            bits.parse::<u8>()
                .ok()
                .filter(|b| *b <= most)
                .ok_or_else(|| format!("{text:?}: the prefix length is 0 to {most}"))?
        };
        Ok(Cidr { network, bits })
    }
}

impl Cidr {
    /// Whether `address` is in the block (an IPv4-mapped IPv6 address counts as its IPv4).
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, address) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix(u32::from(n).into(), u32::from(a).into(), self.bits, 32),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix(u128::from(n), u128::from(a), self.bits, 128),
            _ => false,
        }
    }
}

fn prefix(network: u128, address: u128, bits: u8, width: u32) -> bool {
    if bits == 0 {
        return true;
    }
    let shift = width - u32::from(bits);
    (network >> shift) == (address >> shift)
}

/// The header a trusted proxy writes the client's address in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ProxyHeader {
    /// `X-Forwarded-For: client, proxy1, …`, each proxy appending its peer (nginx's
    /// `$proxy_add_x_forwarded_for`, Caddy, HAProxy's `option forwardfor`, most load balancers).
    #[default]
    #[value(name = "x-forwarded-for", alias = "X-Forwarded-For")]
    XForwardedFor,
    /// `Forwarded: for=…` (RFC 7239), each proxy appending an element.
    #[value(name = "forwarded", alias = "Forwarded")]
    Forwarded,
    /// `X-Real-IP: client`, one address the proxy sets (nginx's `$remote_addr`).
    #[value(name = "x-real-ip", alias = "X-Real-IP")]
    XRealIp,
}

/// The client of a request from `peer`: the nearest address the proxy's `header` names
/// that is not itself a trusted proxy, when `peer` is one; else `peer`.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr], header: ProxyHeader) -> IpAddr {
    let trusts = |address: IpAddr| trusted.iter().any(|block| block.contains(address));
    if !trusts(peer) {
        return peer;
    }
    // The hops, nearest last.
    let hops: Vec<Option<IpAddr>> = match header {
        ProxyHeader::Forwarded => forwarded(headers),
        ProxyHeader::XForwardedFor => headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|hop| hop.trim().parse::<IpAddr>().ok())
            .collect(),
        // The proxy sets it, replacing whatever the client sent: one address, the last.
        ProxyHeader::XRealIp => headers
            .get_all("x-real-ip")
            .iter()
            .next_back()
            .map(|v| v.to_str().ok().and_then(|v| v.trim().parse().ok()))
            .into_iter()
            .collect(),
    };
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        // A hop that is not an address (obfuscated, `unknown`) ends what can be known.
        let Some(address) = hop else {
            break;
        };
        client = address;
        if !trusts(address) {
            break;
        }
    }
    client
}

/// The `for=` of each `Forwarded` element, in order (`None` for one not an address).
fn forwarded(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all("forwarded")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (name, value) = pair.split_once('=')?;
                name.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| node(value.trim()))
            })
        })
        .collect()
}

/// An RFC 7239 node: `192.0.2.60`, `"[2001:db8::1]:4711"`, `"192.0.2.60:80"`.
fn node(value: &str) -> Option<IpAddr> {
    let value = value.trim_matches('"');
    if let Some(rest) = value.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    let host = value.rsplit_once(':').map_or(value, |(host, _)| host);
    value.parse().ok().or_else(|| host.parse().ok())
}

/// The client's address, as [`resolve`] found it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ClientAddress(pub IpAddr);

/// Finds each request's client (by the trusted proxies and the header they write) for the
/// doors inside (the per-address limits, the audit) and opens the request's span, which
/// names it. This replaces poem's `Tracing`, which logs whatever `X-Forwarded-For` or
/// `X-Real-IP` a client sends as its address.
pub(crate) struct Resolve(pub Arc<[Cidr]>, pub ProxyHeader);

impl<E: Endpoint> Middleware<E> for Resolve {
    type Output = ResolveEndpoint<E>;

    fn transform(&self, endpoint: E) -> Self::Output {
        ResolveEndpoint(endpoint, self.0.clone(), self.1)
    }
}

pub(crate) struct ResolveEndpoint<E>(E, Arc<[Cidr]>, ProxyHeader);

impl<E: Endpoint> Endpoint for ResolveEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut request: Request) -> poem::Result<Response> {
        let peer = request.remote_addr().as_socket_addr().map(|a| a.ip());
        let client = peer.map(|peer| client_address(peer, request.headers(), &self.1, self.2));
        if let Some(client) = client {
            request.extensions_mut().insert(ClientAddress(client));
        }
        let span = tracing::info_span!(
            "request",
            remote_addr = %client.map_or_else(|| request.remote_addr().to_string(), |c| c.to_string()),
            version = ?request.version(),
            method = %request.method(),
            uri = %request.original_uri(),
        );
        async move {
            let started = std::time::Instant::now();
            let answered = self.0.call(request).await.map(IntoResponse::into_response);
            let duration = started.elapsed();
            match &answered {
                Ok(response) => tracing::info!(status = %response.status(), ?duration, "response"),
                Err(error) => tracing::info!(status = %error.status(), %error, ?duration, "error"),
            }
            answered
        }
        .instrument(span)
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                poem::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn blocks_read_and_contain_as_written() {
        let block: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(block.contains(ip("10.200.1.2")) && !block.contains(ip("11.0.0.1")));
        assert!(block.contains(ip("::ffff:10.1.1.1")));
        let one: Cidr = "192.0.2.7".parse().unwrap();
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:1::5")) && !v6.contains(ip("2001:db9::1")));
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains(ip("8.8.8.8")));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("proxy".parse::<Cidr>().is_err());
    }

    #[test]
    fn the_headers_count_only_from_a_trusted_peer() {
        let trusted: Vec<Cidr> = vec!["10.0.0.0/8".parse().unwrap()];
        let xff = headers(&[("x-forwarded-for", "203.0.113.9, 10.0.0.2")]);
        let client = |peer, headers: &HeaderMap| {
            client_address(ip(peer), headers, &trusted, ProxyHeader::XForwardedFor)
        };
        // From the proxy: the nearest untrusted hop is the client.
        assert_eq!(client("10.0.0.1", &xff), ip("203.0.113.9"));
        // From anyone else: the headers are the client's own words.
        assert_eq!(client("198.51.100.4", &xff), ip("198.51.100.4"));
        // A client that writes its own header before the proxy appends: the proxy's entry wins.
        let spoofed = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9")]);
        assert_eq!(client("10.0.0.1", &spoofed), ip("203.0.113.9"));
        assert_eq!(client("10.0.0.1", &headers(&[])), ip("10.0.0.1"));
    }

    #[test]
    fn only_the_header_the_proxy_writes_counts() {
        let trusted: Vec<Cidr> = vec!["10.0.0.1".parse().unwrap()];
        // The client wrote `Forwarded`; the proxy appended its peer to `X-Forwarded-For`.
        let both = headers(&[
            ("forwarded", "for=192.0.2.60"),
            ("x-forwarded-for", "198.51.100.1"),
            ("x-real-ip", "192.0.2.61"),
        ]);
        let client = |header| client_address(ip("10.0.0.1"), &both, &trusted, header);
        assert_eq!(client(ProxyHeader::XForwardedFor), ip("198.51.100.1"));
        assert_eq!(client(ProxyHeader::Forwarded), ip("192.0.2.60"));
        assert_eq!(client(ProxyHeader::XRealIp), ip("192.0.2.61"));
        // A proxy configured for `Forwarded` ignores `X-Forwarded-For`, and the reverse.
        let xff_only = headers(&[("x-forwarded-for", "198.51.100.1")]);
        assert_eq!(
            client_address(ip("10.0.0.1"), &xff_only, &trusted, ProxyHeader::Forwarded),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn forwarded_reads_rfc_7239_nodes() {
        let trusted: Vec<Cidr> = vec!["10.0.0.1".parse().unwrap()];
        let client =
            |headers: &HeaderMap| client_address(ip("10.0.0.1"), headers, &trusted, ProxyHeader::Forwarded);
        let two = headers(&[(
            "forwarded",
            r#"for=192.0.2.60;proto=https, for="[2001:db8:cafe::17]:4711""#,
        )]);
        assert_eq!(client(&two), ip("2001:db8:cafe::17"));
        let port = headers(&[("forwarded", r#"for="192.0.2.60:8080""#)]);
        assert_eq!(client(&port), ip("192.0.2.60"));
        let hidden = headers(&[("forwarded", "for=_hidden")]);
        assert_eq!(client(&hidden), ip("10.0.0.1"));
    }
}
