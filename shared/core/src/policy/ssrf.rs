//! Which addresses an outbound request may reach.
//!
//! A webhook URL is chosen by whoever writes the flow or the subscription, so
//! without a guard Hookflow would be a proxy into the network it runs in: the
//! instance metadata service, the VPC, the host's own ports. Every sender
//! resolves the host first and asks [`TargetPolicy::check`] about *each*
//! resolved address (checking the name is not enough: `evil.example` can
//! resolve to `127.0.0.1`), connects only to an address that passed, and
//! never follows redirects.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Why an address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Blocked {
    Loopback,
    Private,
    LinkLocal,
    UniqueLocal,
    SharedAddressSpace,
    Multicast,
    Unspecified,
    Broadcast,
    Metadata,
    Reserved,
    Documentation,
}

impl Blocked {
    pub fn describe(self) -> &'static str {
        match self {
            Blocked::Loopback => "a loopback address",
            Blocked::Private => "a private address",
            Blocked::LinkLocal => "a link-local address",
            Blocked::UniqueLocal => "a unique-local IPv6 address",
            Blocked::SharedAddressSpace => "a carrier-grade NAT address",
            Blocked::Multicast => "a multicast address",
            Blocked::Unspecified => "the unspecified address",
            Blocked::Broadcast => "the broadcast address",
            Blocked::Metadata => "a cloud metadata address",
            Blocked::Reserved => "a reserved address",
            Blocked::Documentation => "a documentation address",
        }
    }
}

/// The outbound address policy: public addresses only, unless an address is
/// inside one of the explicitly allowed networks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    allow: Vec<IpNet>,
}

impl TargetPolicy {
    /// Public addresses only.
    pub fn public_only() -> Self {
        TargetPolicy::default()
    }

    /// Public addresses plus the given networks (e.g. `127.0.0.0/8` for the
    /// dev server, or a VPC range an operator opted into).
    pub fn allowing(allow: Vec<IpNet>) -> Self {
        TargetPolicy { allow }
    }

    pub fn allowed_networks(&self) -> &[IpNet] {
        &self.allow
    }

    /// `Ok` when a connection to `ip` is allowed.
    ///
    /// A cloud metadata address is never allowed, whatever the allowed
    /// networks say (`0.0.0.0/0` must not hand out the instance's
    /// credentials). An allowed IPv4 network admits its IPv4-mapped form
    /// (`::ffff:127.0.0.1` is the same socket as `127.0.0.1`) but not the
    /// translated forms — NAT64, 6to4, IPv4-compatible, SIIT — which reach
    /// a gateway, not that network: those are judged by the IPv4 address
    /// they carry.
    pub fn check(&self, ip: IpAddr) -> Result<(), Blocked> {
        let class = classify(ip);
        if class == Some(Blocked::Metadata) {
            return Err(Blocked::Metadata);
        }
        if self.allow.iter().any(|net| net.contains(&ip)) {
            return Ok(());
        }
        if let IpAddr::V6(v6) = ip
            && let Some(v4) = v6.to_ipv4_mapped()
            && self.allow.iter().any(|net| net.contains(&IpAddr::V4(v4)))
        {
            return Ok(());
        }
        match class {
            Some(reason) => Err(reason),
            None => Ok(()),
        }
    }
}

/// The IPv4 address carried inside an IPv6 one (mapped `::ffff:a.b.c.d`,
/// SIIT's translated `::ffff:0:a.b.c.d`, compatible `::a.b.c.d`, NAT64
/// `64:ff9b::/96`, 6to4 `2002::/16`).
fn embedded_v4(ip: IpAddr) -> Option<Ipv4Addr> {
    let IpAddr::V6(v6) = ip else { return None };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = v6.segments();
    let o = v6.octets();
    if s[..6] == [0, 0, 0, 0, 0, 0] && !(s[6] == 0 && s[7] <= 1) {
        return Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    if s[..6] == [0, 0, 0, 0, 0xffff, 0] {
        return Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    None
}

/// Why `ip` is not a public unicast address, if it is not.
pub fn classify(ip: IpAddr) -> Option<Blocked> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(ip) {
            Some(v4) => classify_v4(v4).or_else(|| classify_v6(v6)),
            None => classify_v6(v6),
        },
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<Blocked> {
    let o = ip.octets();
    Some(match o {
        [169, 254, 169, 254] | [169, 254, 170, 2] => Blocked::Metadata,
        _ if ip.is_unspecified() || o[0] == 0 => Blocked::Unspecified,
        _ if ip.is_loopback() => Blocked::Loopback,
        _ if ip.is_private() => Blocked::Private,
        _ if ip.is_link_local() => Blocked::LinkLocal,
        [100, b, ..] if (64..=127).contains(&b) => Blocked::SharedAddressSpace,
        _ if ip.is_broadcast() => Blocked::Broadcast,
        _ if ip.is_multicast() => Blocked::Multicast,
        [192, 0, 0, _] | [198, 18..=19, _, _] => Blocked::Reserved,
        _ if o[0] >= 240 => Blocked::Reserved,
        [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _] => Blocked::Documentation,
        _ => return None,
    })
}

fn classify_v6(ip: Ipv6Addr) -> Option<Blocked> {
    let s = ip.segments();
    Some(match s {
        // AWS's IPv6 instance metadata endpoint.
        [0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254] => Blocked::Metadata,
        _ if ip.is_unspecified() => Blocked::Unspecified,
        _ if ip.is_loopback() => Blocked::Loopback,
        _ if ip.is_multicast() => Blocked::Multicast,
        _ if s[0] & 0xfe00 == 0xfc00 => Blocked::UniqueLocal,
        _ if s[0] & 0xffc0 == 0xfe80 => Blocked::LinkLocal,
        // Deprecated site-local.
        _ if s[0] & 0xffc0 == 0xfec0 => Blocked::Private,
        [0x2001, 0x0db8, ..] => Blocked::Documentation,
        // Discard-only and benchmarking ranges.
        [0x0100, 0, 0, 0, ..] | [0x2001, 0x0002, 0, ..] => Blocked::Reserved,
        // NAT64 for local use (RFC 8215): translates into the operator's
        // own network; a metadata address in its last 32 bits (the /96
        // form) stays metadata, which no allowance admits.
        [0x64, 0xff9b, 1, ..] => {
            let o = ip.octets();
            match classify_v4(Ipv4Addr::new(o[12], o[13], o[14], o[15])) {
                Some(Blocked::Metadata) => Blocked::Metadata,
                _ => Blocked::Reserved,
            }
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn every_internal_class_is_refused() {
        let p = TargetPolicy::public_only();
        for (addr, why) in [
            ("127.0.0.1", Blocked::Loopback),
            ("127.1.2.3", Blocked::Loopback),
            ("10.0.0.1", Blocked::Private),
            ("172.16.5.4", Blocked::Private),
            ("192.168.1.1", Blocked::Private),
            ("169.254.169.254", Blocked::Metadata),
            ("169.254.170.2", Blocked::Metadata),
            ("169.254.1.1", Blocked::LinkLocal),
            ("::1", Blocked::Loopback),
            ("::ffff:127.0.0.1", Blocked::Loopback),
            ("::ffff:169.254.169.254", Blocked::Metadata),
            ("::ffff:10.1.2.3", Blocked::Private),
            ("::127.0.0.1", Blocked::Loopback),
            ("64:ff9b::a00:1", Blocked::Private),
            ("2002:7f00:1::", Blocked::Loopback),
            ("0.0.0.0", Blocked::Unspecified),
            ("0.1.2.3", Blocked::Unspecified),
            ("::", Blocked::Unspecified),
            ("100.64.0.1", Blocked::SharedAddressSpace),
            ("100.127.255.254", Blocked::SharedAddressSpace),
            ("fd00::1", Blocked::UniqueLocal),
            ("fc00::1", Blocked::UniqueLocal),
            ("fd00:ec2::254", Blocked::Metadata),
            ("fe80::1", Blocked::LinkLocal),
            ("224.0.0.1", Blocked::Multicast),
            ("ff02::1", Blocked::Multicast),
            ("255.255.255.255", Blocked::Broadcast),
            ("240.0.0.1", Blocked::Reserved),
        ] {
            assert_eq!(p.check(ip(addr)), Err(why), "{addr}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        let p = TargetPolicy::public_only();
        for addr in ["93.184.215.14", "1.1.1.1", "100.63.255.255", "2606:4700:4700::1111", "::ffff:8.8.8.8"] {
            assert_eq!(p.check(ip(addr)), Ok(()), "{addr}");
        }
    }

    #[test]
    fn translated_forms_are_refused() {
        let p = TargetPolicy::public_only();
        for (addr, why) in [
            ("::ffff:0:7f00:1", Blocked::Loopback),
            ("::ffff:0:a9fe:a9fe", Blocked::Metadata),
            ("::ffff:0:a00:1", Blocked::Private),
            ("64:ff9b:1::a00:1", Blocked::Reserved),
            ("64:ff9b:1:ffff::808:808", Blocked::Reserved),
        ] {
            assert_eq!(p.check(ip(addr)), Err(why), "{addr}");
        }
    }

    #[test]
    fn an_allowed_ipv4_network_admits_its_mapped_form_only() {
        // The dev server's default: loopback allowed. The translated forms
        // of 127.0.0.1 go through a gateway, not to this host.
        let p = TargetPolicy::allowing(vec!["127.0.0.0/8".parse().unwrap()]);
        assert_eq!(p.check(ip("::ffff:127.0.0.1")), Ok(()));
        for addr in ["::7f00:1", "::127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::", "::ffff:0:7f00:1"] {
            assert_eq!(p.check(ip(addr)), Err(Blocked::Loopback), "{addr}");
        }
    }

    #[test]
    fn no_allowance_lets_metadata_through() {
        let p = TargetPolicy::allowing(vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()]);
        assert_eq!(p.check(ip("10.0.0.1")), Ok(()), "the operator opted every network in");
        for addr in [
            "169.254.169.254",
            "169.254.170.2",
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::a9fe:a9fe",
        ] {
            assert_eq!(p.check(ip(addr)), Err(Blocked::Metadata), "{addr}");
        }
        let p = TargetPolicy::allowing(vec!["169.254.169.254/32".parse().unwrap()]);
        assert_eq!(p.check(ip("169.254.169.254")), Err(Blocked::Metadata));
    }

    #[test]
    fn allow_list_opts_networks_in() {
        let p = TargetPolicy::allowing(vec!["127.0.0.0/8".parse().unwrap(), "10.20.0.0/16".parse().unwrap()]);
        assert_eq!(p.check(ip("127.0.0.1")), Ok(()));
        assert_eq!(p.check(ip("::ffff:127.0.0.1")), Ok(()));
        assert_eq!(p.check(ip("10.20.3.4")), Ok(()));
        assert_eq!(p.check(ip("10.21.3.4")), Err(Blocked::Private));
        assert_eq!(p.check(ip("::1")), Err(Blocked::Loopback));
        assert_eq!(p.check(ip("169.254.169.254")), Err(Blocked::Metadata));
    }
}
