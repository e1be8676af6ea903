//! docs/alerts.yml, the Prometheus alerting rules for on-call (issue 20): `promtool check rules` accepts
//! them, and `promtool test rules docs/alerts.test.yml` passes, which has a case for every alert (a series
//! that fires it beside one that must not).

use std::process::Command;

const DOCS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs");

fn promtool(args: &[&str]) -> (bool, String) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(DOCS)
        .output()
        .expect("promtool (Debian's prometheus package; scripts/install-deps.sh --test installs it)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn the_alerting_rules_are_valid_and_each_alert_has_a_passing_test_case() {
    let (ok, text) = promtool(&["check", "rules", "alerts.yml"]);
    assert!(ok && text.contains("SUCCESS: 11 rules found"), "{text}");
    let (ok, text) = promtool(&["test", "rules", "alerts.test.yml"]);
    assert!(ok && text.contains("SUCCESS"), "{text}");
    let rules = std::fs::read_to_string(format!("{DOCS}/alerts.yml")).expect("alerts.yml");
    let cases = std::fs::read_to_string(format!("{DOCS}/alerts.test.yml")).expect("alerts.test.yml");
    let alerts: Vec<&str> = rules.lines().filter_map(|l| l.trim().strip_prefix("- alert: ")).collect();
    assert_eq!(alerts.len(), 11);
    for alert in alerts {
        let firing = cases.split("alertname: ").skip(1).any(|c| {
            c.starts_with(alert)
                && c[alert.len()..].starts_with(|ch: char| !ch.is_alphanumeric())
                && c.contains("exp_labels")
        });
        assert!(firing, "{alert}: no test case in which it fires");
    }
}
