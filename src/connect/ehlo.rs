//! The default EHLO name.
//!
//! RFC 5321 section 4.1.4: "The domain name given in the EHLO command MUST be either a
//! primary host name (a domain name that resolves to an address RR) or, if the host has
//! no name, an address literal". So: the machine's fully qualified name when it has one;
//! otherwise the literal of the connection's local address (`[192.0.2.7]`,
//! `[IPv6:2001:db8::7]`); never `localhost`, which many MTAs score or refuse.

use std::net::IpAddr;
use std::sync::OnceLock;

use crate::proto::address::EhloName;

/// The EHLO name to use when the caller set none, for a connection whose
/// local address is `local` (`None` when unknown, as for a caller's own stream).
pub fn default_ehlo_name(local: Option<IpAddr>) -> EhloName {
    static HOST: OnceLock<(Option<String>, Option<String>)> = OnceLock::new();
    let (hostname, hosts) = HOST.get_or_init(|| {
        let read = |p: &str| std::fs::read_to_string(p).ok();
        let hostname = read("/proc/sys/kernel/hostname")
            .or_else(|| read("/etc/hostname"))
            .or_else(|| std::env::var("HOSTNAME").ok());
        (hostname, read("/etc/hosts"))
    });
    choose(hostname.as_deref(), hosts.as_deref(), local)
}

/// The choice, from the host name, the hosts file's text and the local address.
fn choose(hostname: Option<&str>, hosts: Option<&str>, local: Option<IpAddr>) -> EhloName {
    let hostname = hostname.map(str::trim).filter(|h| !h.is_empty() && !is_localhost(h));
    if let Some(name) = hostname.and_then(|h| fqdn(h, hosts.unwrap_or_default())) {
        return name;
    }
    if let Some(ip) = local.filter(|ip| !ip.is_unspecified()) {
        return EhloName::from_ip(ip);
    }
    // A bare label is better than nothing; an unknown local address gets the loopback
    // literal, as a caller's in-memory stream is local.
    hostname
        .and_then(|h| EhloName::new(h).ok())
        .unwrap_or_else(|| EhloName::from_ip(IpAddr::from([127, 0, 0, 1])))
}

fn is_localhost(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower == "localhost" || lower.starts_with("localhost.")
}

/// The fully qualified form of `hostname`: itself when dotted, else what `hostname -f`
/// finds in the hosts file (the canonical, first name of a line listing it, or a
/// dotted alias on that line).
fn fqdn(hostname: &str, hosts: &str) -> Option<EhloName> {
    let usable = |n: &str| n.contains('.') && !is_localhost(n) && !n.ends_with('.');
    if usable(hostname) {
        return EhloName::new(hostname).ok();
    }
    hosts
        .lines()
        .map(|line| line.split('#').next().unwrap_or_default())
        .filter_map(|line| {
            let names: Vec<&str> = line.split_whitespace().skip(1).collect();
            names.iter().any(|n| n.eq_ignore_ascii_case(hostname)).then_some(names)
        })
        .flat_map(|names| names.into_iter())
        .find(|n| usable(n))
        .and_then(|n| EhloName::new(n).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const V4: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7)));

    #[test]
    fn fqdn_first() {
        assert_eq!(choose(Some("mx1.example.com\n"), None, V4).as_str(), "mx1.example.com");
        let hosts = "127.0.0.1 localhost\n192.0.2.7 vm.corp.example vm # me\n";
        assert_eq!(choose(Some("vm"), Some(hosts), V4).as_str(), "vm.corp.example");
        assert_eq!(choose(Some("vm"), Some("192.0.2.7 vm vm.lan\n"), V4).as_str(), "vm.lan");
    }

    #[test]
    fn address_literal_when_there_is_no_fqdn() {
        let hosts = "127.0.0.1 localhost localhost.localdomain\n127.0.0.1 vm\n";
        assert_eq!(choose(Some("vm"), Some(hosts), V4).as_str(), "[192.0.2.7]");
        assert_eq!(
            choose(Some("localhost.localdomain"), None, Some("::1".parse().unwrap())).as_str(),
            "[IPv6:::1]"
        );
        assert_eq!(choose(None, None, Some("0.0.0.0".parse().unwrap())).as_str(), "[127.0.0.1]");
        assert_eq!(choose(Some("vm"), None, None).as_str(), "vm");
        assert_eq!(choose(Some("localhost"), None, None).as_str(), "[127.0.0.1]");
    }

    #[test]
    fn never_localhost() {
        assert_ne!(default_ehlo_name(V4).as_str(), "localhost");
        assert_ne!(default_ehlo_name(None).as_str(), "localhost");
    }
}
