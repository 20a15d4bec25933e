//! Outbound HTTP: the one client evflex calls other parties with (credentials discovery,
//! set-points), and the rules every such call follows.
//!
//! A CPO names the URLs evflex calls (its versions URL, then the endpoints it lists), so they
//! are untrusted input. [`Outbound`] therefore:
//! - calls only `http` and `https` URLs, and only public addresses: loopback, private,
//!   link-local, shared (CGNAT), unique-local, multicast, documentation and unspecified
//!   addresses are refused, both as IP literals in the URL and as what a name resolves to (the
//!   check is in the resolver itself, so a name cannot resolve to a public address at the check
//!   and to a private one at the connect). `--allow-private-urls` (`EVFLEX_ALLOW_PRIVATE_URLS=1`)
//!   lifts this for the demo, the tests and a CPO on the same private network;
//! - follows no redirects (a redirect could lead anywhere);
//! - gives up after [`CONNECT_TIMEOUT`] to connect and [`REQUEST_TIMEOUT`] for the whole call;
//! - reads at most [`MAX_BODY_BYTES`] of a response;
//! - reports failures without the transport detail (refused, reset, timed out), which would tell
//!   a caller which ports of a host are open; the detail goes to the log.

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// Longest wait for a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for a whole call, body included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response body read (1 MiB: OCPI versions, endpoints and replies are a few KiB).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Why an outbound call was not made or failed; the message is safe to return to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    /// The URL is malformed, not http(s), or names an address evflex does not call.
    #[error("{0}")]
    Refused(String),
    /// The call was made and failed (no answer in time, connection failed, body too large).
    #[error("{0}")]
    Failed(String),
}

/// Whether `ip` is a public unicast address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        // 100.64.0.0/10, shared address space (carrier-grade NAT).
        || (a == 100 && (b & 0xc0) == 64)
        // 198.18.0.0/15, benchmarking.
        || (a == 198 && (b & 0xfe) == 18)
        // 240.0.0.0/4, reserved.
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_unique_local()
        || ip.is_unicast_link_local()
        // 2001:db8::/32, documentation.
        || (first == 0x2001 && ip.segments()[1] == 0x0db8))
}

/// A resolver that answers only public addresses (the system resolver underneath).
#[derive(Debug, Clone, Copy)]
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = found.into_iter().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(format!("{host} has no public address").into());
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

/// OCPI's request id header: unique per request, echoed in the answer.
pub const REQUEST_ID: &str = "x-request-id";
/// OCPI's correlation id header: the same over every request of one exchange, echoed.
pub const CORRELATION_ID: &str = "x-correlation-id";

/// OCPI's routing headers (transport_and_format.asciidoc, "Message routing"): whom a request of
/// a functional module is from and to, as party codes. Configuration modules (versions,
/// credentials) carry none.
pub mod routing {
    /// Country code of the party a message is from.
    pub const FROM_COUNTRY_CODE: &str = "ocpi-from-country-code";
    /// Party id of the party a message is from.
    pub const FROM_PARTY_ID: &str = "ocpi-from-party-id";
    /// Country code of the party a message is to.
    pub const TO_COUNTRY_CODE: &str = "ocpi-to-country-code";
    /// Party id of the party a message is to.
    pub const TO_PARTY_ID: &str = "ocpi-to-party-id";
}

/// Whom an OCPI request of a functional module is from and to: `(country_code, party_id)` for
/// the [`routing`] headers. evflex sends them on every such call, peer to peer as through a
/// hub (where `to` is the party behind the hub).
#[derive(Debug, Clone, Copy)]
pub struct Route<'a> {
    /// evflex's own codes.
    pub from: (&'a str, &'a str),
    /// The party the message is for.
    pub to: (&'a str, &'a str),
}

impl Route<'_> {
    /// `request` with the four routing headers.
    pub fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request
            .header(routing::FROM_COUNTRY_CODE, self.from.0)
            .header(routing::FROM_PARTY_ID, self.from.1)
            .header(routing::TO_COUNTRY_CODE, self.to.0)
            .header(routing::TO_PARTY_ID, self.to.1)
    }
}

/// The outbound client and its address policy. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Outbound {
    client: reqwest::Client,
    allow_private: bool,
}

impl Outbound {
    /// The client; with `allow_private`, private and loopback addresses may be called too.
    pub fn new(allow_private: bool) -> reqwest::Result<Self> {
        let builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none());
        let builder = if allow_private {
            builder
        } else {
            builder.dns_resolver(PublicOnly)
        };
        Ok(Self {
            client: builder.build()?,
            allow_private,
        })
    }

    /// `url` parsed, if evflex may call it.
    pub fn check(&self, url: &str) -> Result<reqwest::Url, OutboundError> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| OutboundError::Refused(format!("{url:?} is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(OutboundError::Refused(format!(
                "{url}: only http and https URLs are called"
            )));
        }
        let host = parsed
            .host_str()
            .ok_or_else(|| OutboundError::Refused(format!("{url}: no host")))?;
        // An IP literal is not resolved, so it is checked here (IPv6 hosts come bracketed).
        let ip = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok();
        if let Some(ip) = ip
            && !self.allow_private
            && !is_public(ip)
        {
            return Err(OutboundError::Refused(format!(
                "{url}: {ip} is not a public address; evflex calls only public addresses \
                 (unless started with --allow-private-urls)"
            )));
        }
        Ok(parsed)
    }

    /// A request to `url`, if evflex may call it, with a new `X-Request-ID` and
    /// `X-Correlation-ID` (OCPI 2.2.1 transport: every request carries both; evflex starts a new
    /// correlation for each call it makes on its own, as set-points and token pushes are).
    pub fn request(
        &self,
        method: reqwest::Method,
        url: &str,
    ) -> Result<reqwest::RequestBuilder, OutboundError> {
        Ok(self
            .client
            .request(method, self.check(url)?)
            .header(REQUEST_ID, uuid::Uuid::new_v4().to_string())
            .header(CORRELATION_ID, uuid::Uuid::new_v4().to_string()))
    }

    /// Sends `request` and reads at most [`MAX_BODY_BYTES`] of the answer: (status, body).
    pub async fn send(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<(reqwest::StatusCode, Vec<u8>), OutboundError> {
        let answer = self.fetch(what, request).await?;
        Ok((answer.status, answer.body))
    }

    /// [`Outbound::send`], keeping the answer's headers (pagination: `Link`, `X-Total-Count`).
    pub async fn fetch(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Answer, OutboundError> {
        let failed = |e: reqwest::Error| {
            tracing::info!(call = what, error = %e, "outbound call failed");
            OutboundError::Failed(if e.is_timeout() {
                format!("{what}: no answer within {} s", REQUEST_TIMEOUT.as_secs())
            } else {
                format!("{what}: the party's server could not be reached")
            })
        };
        let mut response = request.send().await.map_err(failed)?;
        let status = response.status();
        let headers = response.headers().clone();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(failed)? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(OutboundError::Failed(format!(
                    "{what}: the answer is larger than {} KiB",
                    MAX_BODY_BYTES / 1024
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer {
            status,
            headers,
            body,
        })
    }
}

/// An answer read by [`Outbound::fetch`].
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: reqwest::StatusCode,
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
    /// The body (at most [`MAX_BODY_BYTES`]).
    pub body: Vec<u8>,
}

/// The target of the `rel="next"` link of a `Link` header (RFC 8288; OCPI pagination), if any.
pub fn next_link(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers
        .get_all(reqwest::header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|link| {
            let (target, params) = link.trim().split_once(';')?;
            let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
            params
                .split(';')
                .filter_map(|p| p.trim().split_once('='))
                .any(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("rel")
                        && v.trim()
                            .trim_matches('"')
                            .split_whitespace()
                            .any(|r| r == "next")
                })
                .then(|| target.to_owned())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_unicast_addresses_are_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "151.101.1.1",
            "2a00:1450:4001::1",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn urls_are_checked_before_any_call() {
        let strict = Outbound::new(false).unwrap();
        for url in [
            "http://127.0.0.1:8080/ocpi/versions",
            "http://[::1]/x",
            "http://169.254.169.254/latest/meta-data",
            "file:///etc/passwd",
            "gopher://example.com/",
            "not a url",
        ] {
            assert!(
                matches!(strict.check(url), Err(OutboundError::Refused(_))),
                "{url}"
            );
        }
        assert!(
            strict
                .check("https://cpo.example.com/ocpi/versions")
                .is_ok()
        );
        let lax = Outbound::new(true).unwrap();
        assert!(lax.check("http://127.0.0.1:8080/ocpi/versions").is_ok());
        assert!(lax.check("file:///etc/passwd").is_err());
    }

    #[test]
    fn the_next_link_is_found_among_others() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(next_link(&h), None);
        h.append(
            reqwest::header::LINK,
            r#"<https://cpo.example/ocpi/sessions?offset=0>; rel="prev""#
                .parse()
                .unwrap(),
        );
        assert_eq!(next_link(&h), None);
        h.append(
            reqwest::header::LINK,
            r#"<https://cpo.example/ocpi/sessions?offset=50&limit=50>; rel="next", <https://x/>; rel=last"#
                .parse()
                .unwrap(),
        );
        assert_eq!(
            next_link(&h).as_deref(),
            Some("https://cpo.example/ocpi/sessions?offset=50&limit=50")
        );
        let mut bare = reqwest::header::HeaderMap::new();
        bare.insert(
            reqwest::header::LINK,
            "<https://cpo.example/next>; rel=next".parse().unwrap(),
        );
        assert_eq!(
            next_link(&bare).as_deref(),
            Some("https://cpo.example/next")
        );
    }

    #[tokio::test]
    async fn a_name_that_resolves_only_to_private_addresses_is_not_called() {
        let strict = Outbound::new(false).unwrap();
        let req = strict
            .request(reqwest::Method::GET, "http://localhost:9/ocpi/versions")
            .unwrap();
        let err = strict.send("GET versions", req).await.unwrap_err();
        assert_eq!(
            err,
            OutboundError::Failed("GET versions: the party's server could not be reached".into())
        );
    }
}
