//! `labelSelector` for list calls: `k=v,k2!=v2,k3,!k4` (equals, not equals, has key, lacks key).

use crate::Error;
use stratus_types::{Labels, check_label_key};

#[derive(Clone, Debug, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    Absent(String),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    pub fn parse(text: &str) -> Result<Self, Error> {
        let bad = |why: String| Error::invalid("labelSelector", why);
        let mut requirements = Vec::new();
        for term in text.split(',').map(str::trim) {
            if term.is_empty() {
                return Err(bad(format!("empty term in {text:?}")));
            }
            let requirement = if let Some((k, v)) = term.split_once("!=") {
                Requirement::NotEquals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = term.split_once('=') {
                Requirement::Equals(k.trim().into(), v.trim().into())
            } else if let Some(k) = term.strip_prefix('!') {
                Requirement::Absent(k.trim().into())
            } else {
                Requirement::Exists(term.into())
            };
            let key = match &requirement {
                Requirement::Equals(k, _)
                | Requirement::NotEquals(k, _)
                | Requirement::Exists(k)
                | Requirement::Absent(k) => k,
            };
            check_label_key(key).map_err(bad)?;
            requirements.push(requirement);
        }
        Ok(Self { requirements })
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v.as_str()),
            Requirement::Exists(k) => labels.get(k).is_some(),
            Requirement::Absent(k) => labels.get(k).is_none(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The `key=value` pairs a matching resource must carry.
    pub fn required_pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.requirements.iter().filter_map(|r| match r {
            Requirement::Equals(k, v) => Some((k.as_str(), v.as_str())),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::parse(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        )
        .unwrap()
    }

    #[test]
    fn selects_by_equality_inequality_and_presence() {
        let web = labels(&[("tier", "web"), ("env", "prod")]);
        let db = labels(&[("tier", "db")]);
        let s = LabelSelector::parse("tier=web,env!=dev").unwrap();
        assert!(s.matches(&web) && !s.matches(&db));
        let s = LabelSelector::parse("env").unwrap();
        assert!(s.matches(&web) && !s.matches(&db));
        let s = LabelSelector::parse("!env").unwrap();
        assert!(!s.matches(&web) && s.matches(&db));
    }

    #[test]
    fn malformed_selectors_name_the_parameter() {
        for bad in ["", "a=b,,c", "bad key=x", "=x"] {
            let err = LabelSelector::parse(bad).unwrap_err();
            let Error::InvalidArgument { fields, .. } = err else {
                panic!("want InvalidArgument")
            };
            assert_eq!(fields[0].field, "labelSelector");
        }
    }
}
