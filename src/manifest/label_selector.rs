//! kubectl's `-l/--selector` strings (apimachinery's labels.Parse): comma-separated
//! requirements `key`, `!key`, `key=value` (`==`), `key!=value`, `key in (a,b)`,
//! `key notin (a,b)`, and whether a set of labels matches them.
use std::collections::BTreeMap;

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    Exists(String),
    DoesNotExist(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            // As apimachinery: a missing key satisfies != and notin.
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
        }
    }
}

/// A parsed selector; the empty one matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(pub Vec<Requirement>);

impl LabelSelector {
    pub fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        let empty = BTreeMap::new();
        let labels = labels.unwrap_or(&empty);
        self.0.iter().all(|r| r.matches(labels))
    }
}

/// Splits at commas outside parentheses.
fn split_requirements(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn key(k: &str, whole: &str) -> Result<String, String> {
    let k = k.trim();
    let errs = super::labels::qualified_name_errors(k);
    if k.is_empty() || !errs.is_empty() {
        return Err(format!(
            "unable to parse requirement: invalid label key {k:?} in {whole:?}"
        ));
    }
    Ok(k.to_string())
}

fn values(list: &str, whole: &str) -> Result<Vec<String>, String> {
    let inner = list
        .trim()
        .strip_prefix('(')
        .and_then(|l| l.strip_suffix(')'))
        .ok_or_else(|| format!("found '{}', expected: '(' in {whole:?}", list.trim()))?;
    Ok(inner.split(',').map(|v| v.trim().to_string()).collect())
}

fn requirement(r: &str, whole: &str) -> Result<Requirement, String> {
    let r = r.trim();
    if let Some(k) = r.strip_prefix('!') {
        return Ok(Requirement::DoesNotExist(key(k, whole)?));
    }
    for (op, negated) in [("!=", true), ("==", false), ("=", false)] {
        if let Some((k, v)) = r.split_once(op) {
            let (k, v) = (key(k, whole)?, vec![v.trim().to_string()]);
            return Ok(if negated {
                Requirement::NotIn(k, v)
            } else {
                Requirement::In(k, v)
            });
        }
    }
    for (op, negated) in [(" notin ", true), (" in ", false)] {
        if let Some((k, v)) = r.split_once(op) {
            let (k, v) = (key(k, whole)?, values(v, whole)?);
            return Ok(if negated {
                Requirement::NotIn(k, v)
            } else {
                Requirement::In(k, v)
            });
        }
    }
    Ok(Requirement::Exists(key(r, whole)?))
}

/// Parses a selector string; the error reads as kubectl's.
pub fn parse(s: &str) -> Result<LabelSelector, String> {
    if s.trim().is_empty() {
        return Ok(LabelSelector::default());
    }
    split_requirements(s)
        .into_iter()
        .map(|r| requirement(r, s))
        .collect::<Result<Vec<_>, _>>()
        .map(LabelSelector)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn equality_and_set_requirements_match_as_apimachinery_does() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        let m = |s: &str| parse(s).expect(s).matches(Some(&l));
        assert!(m("app=web"));
        assert!(m("app==web,tier"));
        assert!(!m("app=db"));
        assert!(m("app!=db"));
        assert!(m("env!=prod"), "a missing key satisfies !=");
        assert!(m("tier in (front, back)"));
        assert!(!m("tier notin (front)"));
        assert!(m("!env"));
        assert!(!m("!app"));
        assert!(m(""), "the empty selector matches everything");
        assert!(!parse("app").expect("exists").matches(None));
    }

    #[test]
    fn a_bad_selector_is_refused_naming_it() {
        assert!(parse("app in front").is_err());
        let e = parse("=x").expect_err("no key");
        assert!(e.contains("invalid label key"), "{e}");
    }
}
