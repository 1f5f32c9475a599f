//! The README keeps to the code: its configuration table is the server's command line (every
//! flag, its environment twin and its default, nothing else), and the crate READMEs show plain
//! code (no rustdoc `# ` hidden lines, which GitHub and crates.io print literally).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is a failed test

use std::collections::BTreeMap;
use std::path::Path;

use clap::CommandFactory;
use nexussale_server::Config;

fn workspace_file(path: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|err| panic!("{path}: {err}"))
}

/// The README's configuration rows: flag → (env cell, default cell).
fn configuration_table(readme: &str) -> BTreeMap<String, (String, String)> {
    let section = readme
        .split("\n## Configuration\n")
        .nth(1)
        .expect("a Configuration section")
        .split("\n## ")
        .next()
        .unwrap();
    section
        .lines()
        .filter(|line| line.starts_with("| `--"))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
            let flag = cells[0].trim_matches('`');
            let long = flag.trim_start_matches("--").split(' ').next().unwrap();
            (long.to_owned(), (cells[1].to_owned(), cells[2].to_owned()))
        })
        .collect()
}

#[test]
fn the_configuration_table_is_the_command_line() {
    let table = configuration_table(&workspace_file("README.md"));
    let command = Config::command();
    let mut flags = Vec::new();
    for arg in command.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if ["help", "version"].contains(&long) {
            continue;
        }
        flags.push(long.to_owned());
        let (env, default) = table
            .get(long)
            .unwrap_or_else(|| panic!("--{long} is missing from the README's configuration table"));
        let twin = arg.get_env().expect("every flag has an env twin");
        assert_eq!(
            env,
            &format!("`{}`", twin.to_string_lossy()),
            "--{long}'s environment twin"
        );
        for value in arg.get_default_values() {
            assert!(
                default.contains(&format!("`{}`", value.to_string_lossy())),
                "--{long}: the README says the default is {default}, the server {value:?}"
            );
        }
    }
    let documented: Vec<&String> = table.keys().collect();
    flags.sort();
    assert_eq!(
        documented,
        flags.iter().collect::<Vec<_>>(),
        "the README documents exactly the server's flags"
    );
}

#[test]
fn crate_readmes_show_plain_code() {
    for crate_name in [
        "nexussale-core",
        "nexussale-kafka",
        "nexussale-mysql",
        "nexussale-redis",
    ] {
        let readme = workspace_file(&format!("{crate_name}/README.md"));
        let mut in_code = false;
        for (number, line) in readme.lines().enumerate() {
            if line.starts_with("```") {
                in_code = !in_code;
            } else if in_code {
                assert!(
                    !(line.starts_with("# ") || line == "#"),
                    "{crate_name}/README.md:{}: a rustdoc hidden line shows on GitHub and crates.io: {line}",
                    number + 1
                );
            }
        }
    }
}

/// Every `--flag` the README's Production section names is one of the server's, and the section
/// names each topology flag it is there to explain.
#[test]
fn the_production_section_names_only_real_flags() {
    let readme = workspace_file("README.md");
    let section = readme
        .split("\n## Production\n")
        .nth(1)
        .expect("a Production section")
        .split("\n## ")
        .next()
        .unwrap();
    let command = Config::command();
    let known: Vec<&str> = command
        .get_arguments()
        .filter_map(|arg| arg.get_long())
        .collect();
    let named: Vec<&str> = section
        .match_indices("`--")
        .map(|(at, _)| {
            let flag = &section[at + 3..];
            let end = flag
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .unwrap_or(flag.len());
            &flag[..end]
        })
        .collect();
    for flag in &named {
        assert!(
            known.contains(flag),
            "the Production section names --{flag}, which the server lacks"
        );
    }
    for flag in [
        "redis-sentinel",
        "redis-cluster",
        "redis-ca",
        "redis-client-cert",
        "redis-replica-acks",
        "kafka-partitions",
        "kafka-replication",
        "kafka-option",
        "database-url",
    ] {
        assert!(
            named.contains(&flag),
            "the Production section does not explain --{flag}"
        );
    }
}
