//! The command-line surface every user script depends on.

use crate::util::run_cli;

#[test]
fn help_lists_every_command() {
    let out = run_cli(&["--help"]);
    assert_exit!(out, 0);
    let help = String::from_utf8_lossy(&out.stdout);
    for command in [
        "kql",
        "eql",
        "rules",
        "scan",
        "normalize",
        "run",
        "setup",
        "status",
        "backfill",
        "load",
    ] {
        assert!(
            help.lines()
                .any(|l| l.trim_start().starts_with(&format!("{command} "))),
            "`{command}` missing from --help:\n{help}"
        );
    }
}

#[test]
fn unknown_command_is_a_usage_error() {
    let out = run_cli(&["frobnicate"]);
    assert_exit!(out, 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("frobnicate"));
}
