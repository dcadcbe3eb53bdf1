//! Where the server may send a request on a client's behalf (a webhook's deliveries): only
//! to public addresses, unless the operator allows private ones. A URL is checked on every
//! address its host resolves to, at creation and again at each delivery (a name can
//! resolve elsewhere later); this is the rule for one address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is not public.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// `0.0.0.0/8`, `::`: "this host".
    Unspecified,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// RFC 1918 (`10/8`, `172.16/12`, `192.168/16`) and IPv6 unique local (`fc00::/7`).
    Private,
    /// `100.64.0.0/10`, carrier-grade NAT.
    SharedAddressSpace,
    /// `169.254.0.0/16` (the clouds' metadata service, `169.254.169.254`) and `fe80::/10`.
    LinkLocal,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// Documentation and benchmarking ranges (`192.0.2/24`, `198.18/15`, `198.51.100/24`,
    /// `203.0.113/24`, `2001:db8::/32`), IETF protocol assignments (`192.0.0/24`), and
    /// `240.0.0.0/4` with the broadcast address.
    Reserved,
}

impl Refused {
    /// What a person reads: the address is "a loopback address", and so on.
    pub fn words(self) -> &'static str {
        match self {
            Refused::Unspecified => "an unspecified address",
            Refused::Loopback => "a loopback address",
            Refused::Private => "a private address",
            Refused::SharedAddressSpace => "a carrier-grade NAT address",
            Refused::LinkLocal => "a link-local address (cloud metadata services live there)",
            Refused::Multicast => "a multicast address",
            Refused::Reserved => "a reserved address",
        }
    }
}

/// `Ok` for an address on the public internet; else what it is.
pub fn check(ip: IpAddr) -> Result<(), Refused> {
    match ip {
        IpAddr::V4(v4) => check_v4(v4),
        IpAddr::V6(v6) => check_v6(v6),
    }
}

fn check_v4(ip: Ipv4Addr) -> Result<(), Refused> {
    let [a, b, c, _] = ip.octets();
    match (a, b, c) {
        (0, _, _) => Err(Refused::Unspecified),
        (127, _, _) => Err(Refused::Loopback),
        (10, _, _) | (172, 16..=31, _) | (192, 168, _) => Err(Refused::Private),
        (100, 64..=127, _) => Err(Refused::SharedAddressSpace),
        (169, 254, _) => Err(Refused::LinkLocal),
        (224..=239, _, _) => Err(Refused::Multicast),
        (240..=255, _, _)
        | (192, 0, 0)
        | (192, 0, 2)
        | (198, 18..=19, _)
        | (198, 51, 100)
        | (203, 0, 113) => Err(Refused::Reserved),
        _ => Ok(()),
    }
}

fn check_v6(ip: Ipv6Addr) -> Result<(), Refused> {
    // An IPv4 address written as IPv6 (`::ffff:a.b.c.d`, or NAT64's `64:ff9b::a.b.c.d`)
    // reaches the IPv4 address: judged as that.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return check_v4(v4);
    }
    let s = ip.segments();
    let embedded = |high: u16, low: u16| {
        let [a, b] = high.to_be_bytes();
        let [c, d] = low.to_be_bytes();
        check_v4(Ipv4Addr::new(a, b, c, d))
    };
    if ip.is_unspecified() {
        return Err(Refused::Unspecified);
    }
    if ip.is_loopback() {
        return Err(Refused::Loopback);
    }
    // The other spellings that carry an IPv4 address to it: NAT64's well-known prefix,
    // IPv4-compatible `::a.b.c.d` (deprecated, still routed by some stacks), SIIT's
    // `::ffff:0:a.b.c.d`, and 6to4's `2002:aabb:ccdd::/48`.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || s[..6] == [0; 6] || s[..6] == [0, 0, 0, 0, 0xffff, 0] {
        return embedded(s[6], s[7]);
    }
    if s[0] == 0x2002 {
        return embedded(s[1], s[2]);
    }
    // NAT64's local-use prefix (RFC 8215) translates to whatever IPv4 network its operator
    // chose, private ones included, with the address at several possible offsets.
    if s[..3] == [0x64, 0xff9b, 1] {
        return Err(Refused::Private);
    }
    if ip.is_unspecified() {
        Err(Refused::Unspecified)
    } else if ip.is_loopback() {
        Err(Refused::Loopback)
    } else if s[0] & 0xfe00 == 0xfc00 {
        Err(Refused::Private)
    } else if s[0] & 0xffc0 == 0xfe80 {
        Err(Refused::LinkLocal)
    } else if s[0] & 0xff00 == 0xff00 {
        Err(Refused::Multicast)
    } else if s[0] == 0x2001 && s[1] == 0x0db8 {
        Err(Refused::Reserved)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(text: &str) -> Result<(), Refused> {
        check(text.parse().unwrap())
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.216.34",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert_eq!(of(ip), Ok(()), "{ip}");
        }
    }

    #[test]
    fn loopback_private_link_local_and_metadata_addresses_are_refused() {
        for (ip, why) in [
            ("127.0.0.1", Refused::Loopback),
            ("127.255.255.254", Refused::Loopback),
            ("::1", Refused::Loopback),
            ("0.0.0.0", Refused::Unspecified),
            ("::", Refused::Unspecified),
            ("10.0.0.1", Refused::Private),
            ("172.16.0.1", Refused::Private),
            ("172.31.255.255", Refused::Private),
            ("192.168.1.1", Refused::Private),
            ("fd00:ec2::254", Refused::Private),
            ("fc00::1", Refused::Private),
            ("100.64.0.1", Refused::SharedAddressSpace),
            ("169.254.169.254", Refused::LinkLocal),
            ("fe80::1", Refused::LinkLocal),
            ("224.0.0.1", Refused::Multicast),
            ("ff02::1", Refused::Multicast),
            ("255.255.255.255", Refused::Reserved),
            ("240.0.0.1", Refused::Reserved),
            ("192.0.2.10", Refused::Reserved),
            ("198.18.0.1", Refused::Reserved),
            ("2001:db8::1", Refused::Reserved),
        ] {
            assert_eq!(of(ip), Err(why), "{ip}");
        }
    }

    #[test]
    fn ipv4_written_as_ipv6_is_judged_as_ipv4() {
        assert_eq!(of("::ffff:127.0.0.1"), Err(Refused::Loopback));
        assert_eq!(of("::ffff:169.254.169.254"), Err(Refused::LinkLocal));
        assert_eq!(of("64:ff9b::a00:1"), Err(Refused::Private));
        // IPv4-compatible, SIIT, 6to4 and NAT64's local-use prefix.
        assert_eq!(of("::127.0.0.1"), Err(Refused::Loopback));
        assert_eq!(of("::169.254.169.254"), Err(Refused::LinkLocal));
        assert_eq!(of("::ffff:0:127.0.0.1"), Err(Refused::Loopback));
        assert_eq!(of("::ffff:0:a9fe:a9fe"), Err(Refused::LinkLocal));
        assert_eq!(of("2002:7f00:1::"), Err(Refused::Loopback));
        assert_eq!(of("2002:a9fe:a9fe::1"), Err(Refused::LinkLocal));
        assert_eq!(of("64:ff9b:1::a00:1"), Err(Refused::Private));
        assert_eq!(of("64:ff9b:1:ffff::8.8.8.8"), Err(Refused::Private));
        // Public IPv4 behind those spellings is public.
        assert_eq!(of("::8.8.8.8"), Ok(()));
        assert_eq!(of("2002:808:808::1"), Ok(()));
    }
}
