//! Label and node selectors with apimachinery's semantics: node selector terms ORed and
//! their expressions ANDed, an empty term matching nothing, a nil label selector matching
//! nothing and an empty one everything, `Gt`/`Lt` on integers only.
use k8s_openapi::api::core::v1::{NodeSelector, NodeSelectorRequirement, NodeSelectorTerm};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::BTreeMap;
use thiserror::Error;

/// A selector that apimachinery would refuse to build; the text says why, as it does.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{0}")]
pub struct SelectorError(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    In,
    NotIn,
    Exists,
    DoesNotExist,
    Gt,
    Lt,
}

impl Op {
    fn parse(s: &str, allow_gt_lt: bool) -> Option<Op> {
        Some(match s {
            "In" => Op::In,
            "NotIn" => Op::NotIn,
            "Exists" => Op::Exists,
            "DoesNotExist" => Op::DoesNotExist,
            "Gt" if allow_gt_lt => Op::Gt,
            "Lt" if allow_gt_lt => Op::Lt,
            _ => return None,
        })
    }
}

/// One label requirement, borrowing its key and values from the object it came from.
#[derive(Debug, Clone)]
pub struct Requirement<'a> {
    key: &'a str,
    op: Op,
    values: Vec<&'a str>,
    bound: i64,
}

impl<'a> Requirement<'a> {
    /// Builds a requirement as `labels.NewRequirement` does, with its checks.
    pub fn new(
        key: &'a str,
        op: &str,
        values: &'a [String],
        allow_gt_lt: bool,
    ) -> Result<Requirement<'a>, SelectorError> {
        let op = Op::parse(op, allow_gt_lt).ok_or_else(|| {
            SelectorError(format!("{op:?} is not a valid label selector operator"))
        })?;
        if let Err(e) = crate::node::validate_label_key(key) {
            return Err(SelectorError(format!("key: Invalid value: {key:?}: {e}")));
        }
        let mut bound = 0;
        match op {
            Op::In | Op::NotIn if values.is_empty() => {
                return Err(SelectorError(
                    "values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty"
                        .into(),
                ))
            }
            Op::Exists | Op::DoesNotExist if !values.is_empty() => {
                return Err(SelectorError(format!(
                    "values: Invalid value: {values:?}: values set must be empty for exists and does not exist"
                )))
            }
            Op::Gt | Op::Lt => {
                if values.len() != 1 {
                    return Err(SelectorError(format!(
                        "values: Invalid value: {values:?}: for 'Gt', 'Lt' operators, exactly one value is required"
                    )));
                }
                bound = values[0].parse::<i64>().map_err(|_| {
                    SelectorError(format!(
                        "values[0]: Invalid value: {:?}: for 'Gt', 'Lt' operators, the value must be an integer",
                        values[0]
                    ))
                })?;
            }
            _ => {}
        }
        for v in values {
            if let Err(e) = crate::node::validate_label_value(v) {
                return Err(SelectorError(format!("values: Invalid value: {v:?}: {e}")));
            }
        }
        Ok(Requirement {
            key,
            op,
            values: values.iter().map(String::as_str).collect(),
            bound,
        })
    }

    fn equals(key: &'a str, value: &'a str) -> Requirement<'a> {
        Requirement {
            key,
            op: Op::In,
            values: vec![value],
            bound: 0,
        }
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_with(&|k| labels.get(k).map(String::as_str))
    }

    /// Matches against any label lookup (e.g. a namespace's single label, no map built).
    pub fn matches_with<'v>(&self, get: &dyn Fn(&str) -> Option<&'v str>) -> bool {
        let got = get(self.key);
        match self.op {
            Op::In => got.is_some_and(|v| self.values.contains(&v)),
            Op::NotIn => got.is_none_or(|v| !self.values.contains(&v)),
            Op::Exists => got.is_some(),
            Op::DoesNotExist => got.is_none(),
            // A label value that is not an integer matches neither Gt nor Lt.
            Op::Gt => got
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v > self.bound),
            Op::Lt => got
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v < self.bound),
        }
    }
}

/// A compiled `metav1.LabelSelector`.
#[derive(Debug, Clone)]
pub struct Selector<'a> {
    nothing: bool,
    reqs: Vec<Requirement<'a>>,
}

impl<'a> Selector<'a> {
    /// `LabelSelectorAsSelector`: nil selects nothing, `{}` selects everything.
    pub fn from_label_selector(
        sel: Option<&'a LabelSelector>,
    ) -> Result<Selector<'a>, SelectorError> {
        let Some(sel) = sel else {
            return Ok(Selector::nothing());
        };
        let mut reqs = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            if let Err(e) = crate::node::validate_label_value(v) {
                return Err(SelectorError(format!("values: Invalid value: {v:?}: {e}")));
            }
            reqs.push(Requirement::equals(k, v));
        }
        for e in sel.match_expressions.iter().flatten() {
            let values = e.values.as_deref().unwrap_or(&[]);
            reqs.push(Requirement::new(&e.key, &e.operator, values, false)?);
        }
        Ok(Selector {
            nothing: false,
            reqs,
        })
    }

    pub fn nothing() -> Selector<'a> {
        Selector {
            nothing: true,
            reqs: Vec::new(),
        }
    }

    pub fn everything() -> Selector<'a> {
        Selector {
            nothing: false,
            reqs: Vec::new(),
        }
    }

    /// Adds a requirement (matchLabelKeys / mismatchLabelKeys merge into the selector).
    pub fn push(&mut self, key: &'a str, op: Op, value: &'a str) {
        self.reqs.push(Requirement {
            key,
            op,
            values: vec![value],
            bound: 0,
        });
    }

    pub fn is_nothing(&self) -> bool {
        self.nothing
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        !self.nothing && self.reqs.iter().all(|r| r.matches(labels))
    }

    pub fn matches_with<'v>(&self, get: &dyn Fn(&str) -> Option<&'v str>) -> bool {
        !self.nothing && self.reqs.iter().all(|r| r.matches_with(get))
    }
}

/// Whether the node's fields (only `metadata.name` exists) satisfy one matchFields entry.
fn field_matches(r: &NodeSelectorRequirement, node_name: &str) -> Result<bool, SelectorError> {
    let values = r.values.as_deref().unwrap_or(&[]);
    let got = if r.key == "metadata.name" {
        node_name
    } else {
        ""
    };
    match r.operator.as_str() {
        "In" | "NotIn" if values.len() != 1 => Err(SelectorError(format!(
            "unexpected number of value ({}) for node field selector operator {:?}",
            values.len(),
            r.operator
        ))),
        "In" => Ok(got == values[0]),
        "NotIn" => Ok(got != values[0]),
        other => Err(SelectorError(format!(
            "{other:?} is not a valid node field selector operator"
        ))),
    }
}

/// One node selector term; `Err` when it cannot be built (the scheduler then treats the
/// term as matching nothing and carries on).
pub fn term_matches(
    term: &NodeSelectorTerm,
    labels: &BTreeMap<String, String>,
    node_name: &str,
) -> Result<bool, SelectorError> {
    let exprs = term.match_expressions.as_deref().unwrap_or(&[]);
    let fields = term.match_fields.as_deref().unwrap_or(&[]);
    if exprs.is_empty() && fields.is_empty() {
        // A nil or empty term selects no objects.
        return Ok(false);
    }
    let mut all = true;
    for e in exprs {
        let r = Requirement::new(
            &e.key,
            &e.operator,
            e.values.as_deref().unwrap_or(&[]),
            true,
        )?;
        all &= r.matches(labels);
    }
    for f in fields {
        all &= field_matches(f, node_name)?;
    }
    Ok(all)
}

/// A required node selector: terms ORed; a term that fails to parse matches nothing.
pub fn node_selector_matches(
    sel: &NodeSelector,
    labels: &BTreeMap<String, String>,
    node_name: &str,
) -> bool {
    sel.node_selector_terms
        .iter()
        .any(|t| term_matches(t, labels, node_name).unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
    fn req(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|s| s.to_string()).collect()),
        }
    }
    fn term(exprs: Vec<NodeSelectorRequirement>) -> NodeSelectorTerm {
        NodeSelectorTerm {
            match_expressions: Some(exprs),
            match_fields: None,
        }
    }
    fn m(r: NodeSelectorRequirement, l: &BTreeMap<String, String>) -> Result<bool, SelectorError> {
        term_matches(&term(vec![r]), l, "node1")
    }

    #[test]
    fn operators_on_node_labels() {
        let l = labels(&[("nodeenv", "pro"), ("cores", "8"), ("zone", "a1")]);
        let cases = [
            (req("nodeenv", "In", &["pro", "yyy"]), true),
            (req("nodeenv", "In", &["xxx", "yyy"]), false),
            (req("missing", "In", &["pro"]), false),
            (req("nodeenv", "NotIn", &["xxx"]), true),
            (req("nodeenv", "NotIn", &["pro"]), false),
            (req("missing", "NotIn", &["pro"]), true),
            (req("nodeenv", "Exists", &[]), true),
            (req("missing", "Exists", &[]), false),
            (req("missing", "DoesNotExist", &[]), true),
            (req("nodeenv", "DoesNotExist", &[]), false),
            (req("cores", "Gt", &["4"]), true),
            (req("cores", "Gt", &["8"]), false),
            (req("cores", "Lt", &["16"]), true),
            (req("cores", "Lt", &["8"]), false),
            (req("missing", "Gt", &["1"]), false),
            (req("missing", "Lt", &["1"]), false),
            // The node's value is not an integer: neither Gt nor Lt match.
            (req("zone", "Gt", &["0"]), false),
            (req("zone", "Lt", &["100"]), false),
        ];
        for (r, want) in cases {
            assert_eq!(m(r.clone(), &l), Ok(want), "{r:?}");
        }
    }

    #[test]
    fn malformed_requirements_do_not_build() {
        let l = labels(&[("cores", "8")]);
        // Gt/Lt want exactly one integer.
        assert!(m(req("cores", "Gt", &["four"]), &l).is_err());
        assert!(m(req("cores", "Lt", &["1.5"]), &l).is_err());
        assert!(m(req("cores", "Gt", &["1", "2"]), &l).is_err());
        // Exists with a value, In with none, unknown operator.
        assert!(m(req("cores", "Exists", &["8"]), &l).is_err());
        assert!(m(req("cores", "In", &[]), &l).is_err());
        assert!(m(req("cores", "Equals", &["8"]), &l).is_err());
        // And the node selector treats such a term as matching nothing.
        let sel = NodeSelector {
            node_selector_terms: vec![term(vec![req("cores", "Gt", &["four"])])],
        };
        assert!(!node_selector_matches(&sel, &l, "n"));
    }

    #[test]
    fn terms_or_expressions_and() {
        let l = labels(&[("a", "1"), ("b", "2")]);
        let both = term(vec![req("a", "In", &["1"]), req("b", "In", &["2"])]);
        let half = term(vec![req("a", "In", &["1"]), req("b", "In", &["3"])]);
        assert_eq!(term_matches(&both, &l, "n"), Ok(true));
        assert_eq!(term_matches(&half, &l, "n"), Ok(false));
        let sel = NodeSelector {
            node_selector_terms: vec![half.clone(), both],
        };
        assert!(node_selector_matches(&sel, &l, "n"));
        let sel = NodeSelector {
            node_selector_terms: vec![half],
        };
        assert!(!node_selector_matches(&sel, &l, "n"));
    }

    #[test]
    fn empty_terms_match_nothing() {
        let l = labels(&[("a", "1")]);
        assert_eq!(
            term_matches(&NodeSelectorTerm::default(), &l, "n"),
            Ok(false)
        );
        assert_eq!(term_matches(&term(vec![]), &l, "n"), Ok(false));
        let none = NodeSelector {
            node_selector_terms: vec![],
        };
        assert!(!node_selector_matches(&none, &l, "n"));
    }

    #[test]
    fn match_fields_on_metadata_name() {
        let l = labels(&[]);
        let t = |op: &str, v: &[&str]| NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![req("metadata.name", op, v)]),
        };
        assert_eq!(term_matches(&t("In", &["node1"]), &l, "node1"), Ok(true));
        assert_eq!(term_matches(&t("In", &["node2"]), &l, "node1"), Ok(false));
        assert_eq!(term_matches(&t("NotIn", &["node2"]), &l, "node1"), Ok(true));
        assert!(term_matches(&t("In", &["a", "b"]), &l, "node1").is_err());
        assert!(term_matches(&t("Exists", &[]), &l, "node1").is_err());
    }

    #[test]
    fn label_selector_nil_empty_and_operators() {
        let l = labels(&[("podenv", "pro"), ("tier", "web")]);
        assert!(!Selector::from_label_selector(None).unwrap().matches(&l));
        let empty = LabelSelector::default();
        assert!(Selector::from_label_selector(Some(&empty))
            .unwrap()
            .matches(&l));
        let sel = LabelSelector {
            match_labels: Some([("tier".to_string(), "web".to_string())].into()),
            match_expressions: Some(vec![
                k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement {
                    key: "podenv".into(),
                    operator: "In".into(),
                    values: Some(vec!["pro".into()]),
                },
            ]),
        };
        assert!(Selector::from_label_selector(Some(&sel))
            .unwrap()
            .matches(&l));
        let exists_with_value = LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![
                k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement {
                    key: "podenv".into(),
                    operator: "Exists".into(),
                    values: Some(vec!["pro".into()]),
                },
            ]),
        };
        assert!(Selector::from_label_selector(Some(&exists_with_value)).is_err());
        let gt = LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![
                k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement {
                    key: "n".into(),
                    operator: "Gt".into(),
                    values: Some(vec!["1".into()]),
                },
            ]),
        };
        assert!(
            Selector::from_label_selector(Some(&gt)).is_err(),
            "label selectors know no Gt/Lt"
        );
    }
}
