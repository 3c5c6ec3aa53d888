//! Which IP addresses the provider may call on an application's behalf (SSRF defence).
//!
//! [`forbidden_range`] names the special-purpose range an address falls in, or `None` for a public
//! unicast address. IPv4-mapped (`::ffff:0:0/96`) and NAT64 (`64:ff9b::/96`) IPv6 addresses are
//! judged by the IPv4 address they carry; the deprecated IPv4-compatible range (`::/96`) is refused
//! outright.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The address a client is counted by in per-address limits: an IPv4 address (also one mapped into
/// IPv6) on its own, an IPv6 address by its /64, which one subscriber usually holds whole.
pub fn client_bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// The special-purpose range `ip` belongs to, or `None` if it is a public unicast address.
pub fn forbidden_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    let r = match o {
        [0, ..] => "this network (0.0.0.0/8)",
        [10, ..] => "private (10.0.0.0/8)",
        [100, b, ..] if (64..128).contains(&b) => "carrier-grade NAT (100.64.0.0/10)",
        [127, ..] => "loopback (127.0.0.0/8)",
        [169, 254, ..] => "link-local (169.254.0.0/16)",
        [172, b, ..] if (16..32).contains(&b) => "private (172.16.0.0/12)",
        [192, 0, 0, _] => "IETF protocol assignments (192.0.0.0/24)",
        [192, 0, 2, _] => "documentation (192.0.2.0/24)",
        [192, 88, 99, _] => "6to4 relay anycast (192.88.99.0/24)",
        [192, 168, ..] => "private (192.168.0.0/16)",
        [198, b, ..] if b == 18 || b == 19 => "benchmarking (198.18.0.0/15)",
        [198, 51, 100, _] => "documentation (198.51.100.0/24)",
        [203, 0, 113, _] => "documentation (203.0.113.0/24)",
        [a, ..] if (224..240).contains(&a) => "multicast (224.0.0.0/4)",
        [a, ..] if a >= 240 => "reserved (240.0.0.0/4, broadcast)",
        _ => return None,
    };
    Some(r)
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if ip.is_unspecified() {
        return Some("unspecified (::)");
    }
    if ip.is_loopback() {
        return Some("loopback (::1)");
    }
    if let Some(v4) = ip.to_ipv4_mapped() {
        // Judged by the IPv4 address it carries.
        return forbidden_v4(v4);
    }
    let r = match s {
        [0, 0, 0, 0, 0, 0, _, _] => "IPv4-compatible (::/96)",
        [0, 0, 0, 0, 0xffff, 0, _, _] => "IPv4-translated (::ffff:0:0:0/96)",
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => {
            let v4 = Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
            return forbidden_v4(v4).map(|_| "NAT64 of a forbidden IPv4 address (64:ff9b::/96)");
        }
        [0x64, 0xff9b, 1, ..] => "local-use NAT64 (64:ff9b:1::/48)",
        [0x100, 0, 0, 0, ..] => "discard-only (100::/64)",
        [0x100, 0, 0, 1, ..] => "dummy prefix (100:0:0:1::/64)",
        [0x2001, b, ..] if b < 0x200 => "IETF protocol assignments (2001::/23)",
        [0x2001, 0xdb8, ..] => "documentation (2001:db8::/32)",
        [0x2002, ..] => "6to4 (2002::/16)",
        [0x3fff, b, ..] if b < 0x1000 => "documentation (3fff::/20)",
        [0x5f00, ..] => "segment routing SIDs (5f00::/16)",
        [a, ..] if a & 0xfe00 == 0xfc00 => "unique local (fc00::/7)",
        [a, ..] if a & 0xffc0 == 0xfe80 => "link-local (fe80::/10)",
        [a, ..] if a & 0xffc0 == 0xfec0 => "site-local (fec0::/10)",
        [a, ..] if a & 0xff00 == 0xff00 => "multicast (ff00::/8)",
        _ => return None,
    };
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(s: &str) -> Option<&'static str> {
        forbidden_range(s.parse().unwrap())
    }

    #[test]
    fn ipv4_translated_dummy_prefix_and_srv6_ranges_are_forbidden() {
        for a in ["::ffff:0:192.0.2.1", "::ffff:0:8.8.8.8", "100::1", "100:0:0:1::7", "5f00::1", "5f00:ffff::1"] {
            assert!(f(a).is_some(), "{a} should be forbidden");
        }
        assert_eq!(f("2606:4700::1111"), None);
    }

    #[test]
    fn forbidden_ipv4_ranges_are_named() {
        for a in [
            "0.0.0.0",
            "10.1.2.3",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.255",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(f(a).is_some(), "{a} should be forbidden");
        }
    }

    #[test]
    fn public_ipv4_addresses_pass() {
        for a in
            ["1.1.1.1", "8.8.8.8", "100.63.255.255", "100.128.0.0", "172.15.255.255", "172.32.0.0", "93.184.216.34"]
        {
            assert_eq!(f(a), None, "{a} should be allowed");
        }
    }

    #[test]
    fn forbidden_ipv6_ranges_including_mapped_ipv4_are_named() {
        for a in [
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
            "2001:db8::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2002:a00:1::1",
            "100::1",
        ] {
            assert!(f(a).is_some(), "{a} should be forbidden");
        }
    }

    #[test]
    fn public_ipv6_and_mapped_public_ipv4_pass() {
        for a in ["2606:4700:4700::1111", "2a00:1450:4001::1", "::ffff:8.8.8.8", "64:ff9b::808:808"] {
            assert_eq!(f(a), None, "{a} should be allowed");
        }
    }
}
