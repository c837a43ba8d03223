//! Where the region may read an image from.
//!
//! Registering an image makes the control plane read bytes from a source and serve them to
//! every tenant as a disk. Left open, that is a way to read anything the server can: `/etc/shadow`,
//! `/proc/self/environ`, the data directory's own secrets, or a service on the host's loopback
//! or the cloud's link-local metadata address (server-side request forgery). So a source must
//! be one of:
//!
//! - a file inside one of the configured import directories (`[images] import-dirs`; the
//!   directories of the catalog's own image files count as such), judged by its canonical path,
//!   so neither `..` nor a symbolic link leads out of them;
//! - an `http`/`https` URL whose host is not loopback, link-local, unspecified, multicast or
//!   broadcast, nor one of the host's own addresses, unless the configuration names the host in
//!   `[images] allowed-url-hosts`. Names are resolved by the importer, every address checked, and
//!   the connection made to a checked address, so a name cannot be re-pointed between the
//!   check and the download; each redirect is checked the same way.
//!
//! This module holds the rules; the importer does the resolving and connecting.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The configured places images may come from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImportSources {
    /// Directories whose files may be imported (canonical paths).
    pub dirs: Vec<PathBuf>,
    /// URL hosts (names or addresses, as written in URLs) allowed even where the address
    /// rules would refuse them.
    pub allowed_hosts: Vec<String>,
}

/// A source, read from a registration.
#[derive(Clone, Debug, PartialEq)]
pub enum ImportSource {
    /// An absolute path on the control plane's host (not yet checked against the directories).
    File(PathBuf),
    /// An http(s) URL.
    Url(url::Url),
}

impl ImportSources {
    /// Reads `source` as an absolute path or an http(s) URL with a host; the error says what
    /// is wrong, for the `source` field.
    pub fn parse(&self, source: &str) -> Result<ImportSource, String> {
        if source.starts_with('/') {
            return Ok(ImportSource::File(PathBuf::from(source)));
        }
        let url = url::Url::parse(source).map_err(|_| {
            "give an absolute path on the control plane's host or an http(s) URL".to_owned()
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "URLs of scheme {} are not imported; use http or https",
                url.scheme()
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("put no credentials in the URL".into());
        }
        let host = url.host_str().unwrap_or_default().to_owned();
        if host.is_empty() {
            return Err("the URL names no host".into());
        }
        if let Some(ip) = literal_address(&url)
            && !self.host_allowed(&host)
            && let Some(why) = refused_address(ip)
        {
            return Err(refusal(&host, ip, why));
        }
        Ok(ImportSource::Url(url))
    }

    /// Whether the canonical path `file` lies inside an import directory.
    pub fn file_allowed(&self, canonical: &Path) -> bool {
        self.dirs.iter().any(|dir| canonical.starts_with(dir))
    }

    /// Why `file` (a canonical path) may not be imported, naming where files may come from.
    pub fn file_refusal(&self, file: &Path) -> String {
        if self.dirs.is_empty() {
            format!(
                "{} is not in an import directory, and this region has none; an operator names \
                 them in [images] import-dirs",
                file.display()
            )
        } else {
            let dirs: Vec<String> = self.dirs.iter().map(|d| d.display().to_string()).collect();
            format!(
                "{} is not in an import directory ({})",
                file.display(),
                dirs.join(", ")
            )
        }
    }

    /// Whether the configuration allows `host` whatever its addresses are.
    pub fn host_allowed(&self, host: &str) -> bool {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        self.allowed_hosts.iter().any(|h| {
            h.trim_start_matches('[')
                .trim_end_matches(']')
                .eq_ignore_ascii_case(bare)
        })
    }
}

/// The address a URL names literally, if it names one.
pub fn literal_address(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(_) => None,
    }
}

/// Why the importer must not connect to `ip`, or `None` when it may (the host's own addresses
/// are the importer's to add, since finding them is I/O).
pub fn refused_address(ip: IpAddr) -> Option<&'static str> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) if v4.is_loopback() => Some("a loopback address"),
        IpAddr::V4(v4) if v4.is_link_local() => Some("a link-local address"),
        IpAddr::V4(v4) if v4.is_unspecified() || v4.octets()[0] == 0 => {
            Some("an unspecified address")
        }
        IpAddr::V4(v4) if v4.is_multicast() || v4.is_broadcast() => Some("a broadcast address"),
        IpAddr::V6(v6) if v6.is_loopback() => Some("a loopback address"),
        IpAddr::V6(v6) if v6.is_unspecified() => Some("an unspecified address"),
        IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80 => Some("a link-local address"),
        IpAddr::V6(v6) if v6.is_multicast() => Some("a broadcast address"),
        _ => None,
    }
}

/// The message for a host refused because of its address.
pub fn refusal(host: &str, ip: IpAddr, why: &str) -> String {
    format!(
        "{host} is {ip}, {why}; images are not fetched from there unless an operator allows the \
         host in [images] allowed-url-hosts"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources() -> ImportSources {
        ImportSources {
            dirs: vec![PathBuf::from("/srv/images")],
            allowed_hosts: vec!["127.0.0.2".into(), "[::1]".into()],
        }
    }

    #[test]
    fn files_only_inside_the_import_directories() {
        let s = sources();
        assert!(s.file_allowed(Path::new("/srv/images/debian.qcow2")));
        assert!(s.file_allowed(Path::new("/srv/images/a/b.raw")));
        assert!(!s.file_allowed(Path::new("/srv/images-other/x.raw")));
        assert!(!s.file_allowed(Path::new("/etc/shadow")));
        assert!(
            s.file_refusal(Path::new("/etc/shadow"))
                .contains("/srv/images")
        );
        let none = ImportSources::default();
        assert!(!none.file_allowed(Path::new("/srv/images/debian.qcow2")));
        assert!(none.file_refusal(Path::new("/x")).contains("import-dirs"));
    }

    #[test]
    fn urls_to_the_hosts_own_services_are_refused() {
        let s = sources();
        for url in [
            "http://127.0.0.1:8080/x",
            "http://169.254.169.254/latest/meta-data",
            "http://[::ffff:127.0.0.1]/x",
            "http://[fe80::1]/x",
            "http://0.0.0.0/x",
            "http://0/x",
            "http://2130706433/x",
            "http://[::]/x",
        ] {
            let err = s.parse(url).unwrap_err();
            assert!(err.contains("allowed-url-hosts"), "{url}: {err}");
        }
        for url in [
            "https://cloud.debian.org/images/x.qcow2",
            "http://10.1.2.3/x.raw",
            "http://127.0.0.2/x",
            "http://[::1]:8080/x",
        ] {
            assert!(s.parse(url).is_ok(), "{url}");
        }
        for bad in [
            "file:///etc/shadow",
            "ftp://example.com/x",
            "relative/path",
            "http://user:pw@example.com/x",
        ] {
            assert!(s.parse(bad).is_err(), "{bad}");
        }
    }
}
