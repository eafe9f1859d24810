//! Filter expressions against entries shaped as the API renders them: a table of expressions and
//! the entries each lets through, and a table of bad expressions with the position they name.

use serde_json::json;

use super::*;

fn entries() -> Vec<Value> {
    vec![
        json!({
            "Node": {"Node": "n1", "Meta": {}},
            "Service": {"ID": "web-1", "Service": "web", "Tags": ["v1", "canary"], "Port": 80,
                        "Meta": {"version": "1.2", "build id": "77"}},
            "Checks": [{"CheckID": "serfHealth", "Status": "passing"}, {"CheckID": "service:web-1", "Status": "critical"}],
        }),
        json!({
            "Node": {"Node": "n2", "Meta": {"rack": "r1"}},
            "Service": {"ID": "web-2", "Service": "web", "Tags": ["v2"], "Port": 8080, "Meta": {}},
            "Checks": [{"CheckID": "service:web-2", "Status": "passing"}],
        }),
        json!({
            "Node": {"Node": "n3", "Meta": {}},
            "Service": {"ID": "db-1", "Service": "db", "Tags": [], "Port": 5432, "Meta": {"version": "9"}},
            "Checks": [],
        }),
    ]
}

/// The ids of the entries `filter` lets through.
fn passing(filter: &str) -> Vec<String> {
    let f = Filter::parse(filter).unwrap_or_else(|e| panic!("{filter}: {e}"));
    entries()
        .iter()
        .filter(|e| f.matches(e).unwrap_or_else(|err| panic!("{filter}: {err}")))
        .map(|e| e["Service"]["ID"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn expressions_select_what_consul_would() {
    let cases: &[(&str, &[&str])] = &[
        (r#"Service.Tags contains "v1""#, &["web-1"]),
        (r#""canary" in Service.Tags"#, &["web-1"]),
        (r#"canary in Service.Tags"#, &["web-1"]),
        (r#""canary" not in Service.Tags"#, &["web-2", "db-1"]),
        (r#"Service.Tags not contains "v1""#, &["web-2", "db-1"]),
        (r#"Service.Tags is empty"#, &["db-1"]),
        (r#"Service.Tags is not empty"#, &["web-1", "web-2"]),
        (r#"Service.Meta.version == "1.2""#, &["web-1"]),
        (r#"Service.Meta["build id"] == `77`"#, &["web-1"]),
        (r#"Service.Meta.version != "1.2""#, &["web-2", "db-1"]),
        (r#"Service.Meta.missing == "x""#, &[]),
        (r#"Service.Meta is empty"#, &["web-2"]),
        (r#""version" in Service.Meta"#, &["web-1", "db-1"]),
        (r#"Service.Port == 8080"#, &["web-2"]),
        (r#"Checks.Status == "critical""#, &["web-1"]),
        (r#"Checks.Status != "critical""#, &["web-2", "db-1"]),
        (r#"Checks is empty"#, &["db-1"]),
        (r#"Service.ID matches "^web-[0-9]$""#, &["web-1", "web-2"]),
        (r#"Service.ID not matches "^web""#, &["db-1"]),
        (r#"Service.Service contains "e""#, &["web-1", "web-2"]),
        (r#"Service.Service == "web" and Service.Tags contains "v2""#, &["web-2"]),
        (r#"Service.Service == "db" or Service.Tags contains "v2""#, &["web-2", "db-1"]),
        (r#"not Service.Service == "web""#, &["db-1"]),
        (r#"Service.Service == "web" and not (Service.Tags contains "v1" or Service.Port == 8080)"#, &[]),
        (
            r#"Service.Service == "web" and not Service.Tags contains "v1" or Service.Service == "db""#,
            &["web-2", "db-1"],
        ),
        (r#"Node.Meta.rack == r1"#, &["web-2"]),
        (r#"Service.Service == "web" AND Service.Port == 80"#, &["web-1"]),
        (r#"Service.Meta.version == "say \"hi\"""#, &[]),
    ];
    for (filter, want) in cases {
        assert_eq!(passing(filter), *want, "{filter}");
    }
}

#[test]
fn bad_expressions_name_their_position() {
    let cases: &[(&str, usize, &str)] = &[
        ("", 0, "expected a selector"),
        ("Service.Tags", 12, "expected \"==\""),
        ("Service.Tags contains", 21, "expected a value"),
        ("Service.Tags contains \"a\" and", 29, "expected a selector"),
        ("(Service.ID == \"a\"", 18, "expected \")\""),
        ("Service.ID == \"a\")", 17, "unexpected \")\""),
        ("Service.ID == \"a", 14, "never closed"),
        ("Service.ID matches \"[\"", 19, "not a regular expression"),
        ("Service.ID is full", 14, "expected \"empty\""),
        ("Service. == \"a\"", 9, "a field name"),
        ("Service.ID ~ \"a\"", 11, "unexpected character"),
        ("\"a\" notin Service.Tags", 4, "expected \"in\""),
        ("Service.ID not == \"a\"", 15, "expected \"contains\", \"matches\" or \"in\""),
    ];
    for (filter, position, message) in cases {
        let e = Filter::parse(filter).err().unwrap_or_else(|| panic!("{filter} parsed"));
        assert_eq!(e.position, *position, "{filter}: {e}");
        assert!(e.message.contains(message), "{filter}: {e}");
    }
}

#[test]
fn a_selector_of_no_field_is_an_error_naming_it() {
    let f = Filter::parse(r#"Service.Tagz contains "v1""#).unwrap();
    let e = f.matches(&entries()[0]).unwrap_err();
    assert!(e.message.contains("Tagz") && e.position == 0, "{e}");
    // Below free-form maps, any key: absent, not an error.
    assert!(!Filter::parse(r#"Service.Meta.anything == "x""#).unwrap().matches(&entries()[0]).unwrap());
}
