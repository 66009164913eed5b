//! The binary as a kubectl plugin: invoked as `kubectl-kafkagroups` (kubectl runs a plugin with argv[0] the
//! path it found on PATH; krew installs a symlink of that name), it presents itself as `kubectl kafkagroups`
//! and offers only the command-line commands; the operator's own commands (`run`, `broker`, `crds`) are
//! neither listed nor accepted.

use std::ffi::OsStr;
use std::path::Path;

/// The executable name kubectl looks for on PATH for `kubectl kafkagroups`.
pub const PLUGIN_EXECUTABLE: &str = "kubectl-kafkagroups";

/// How the plugin is invoked, as its usage shows it.
pub const PLUGIN_USAGE_NAME: &str = "kubectl kafkagroups";

/// The commands a plugin user has: everything else is the operator's.
pub const PLUGIN_COMMANDS: [&str; 5] = ["lag", "plan", "apply", "export", "version"];

/// Whether argv[0] (a path or a bare name) is the plugin's executable name.
pub fn invoked_as_plugin(argv0: Option<&OsStr>) -> bool {
    argv0
        .and_then(|a| Path::new(a).file_name())
        .and_then(OsStr::to_str)
        .is_some_and(|name| name == PLUGIN_EXECUTABLE || name == format!("{PLUGIN_EXECUTABLE}.exe"))
}

/// The operator's command line turned into the plugin's: named `kubectl kafkagroups` in usage and help, its
/// examples written that way, with the same global options and only the plugin's commands (the operator's are
/// not there at all: `run` is an unknown command, and `help run` too).
pub fn plugin_command(command: clap::Command, binary_name: &str) -> clap::Command {
    let (from, to) = (format!("{binary_name} "), format!("{PLUGIN_USAGE_NAME} "));
    let subcommands: Vec<clap::Command> = command
        .get_subcommands()
        .filter(|sub| is_plugin_command(sub.get_name()))
        .map(
            |sub| match sub.get_long_about().map(|text| text.to_string().replace(&from, &to)) {
                Some(text) => sub.clone().long_about(text),
                None => sub.clone(),
            },
        )
        .collect();
    let mut plugin = clap::Command::new(PLUGIN_EXECUTABLE)
        .bin_name(PLUGIN_USAGE_NAME)
        .display_name(PLUGIN_USAGE_NAME)
        .about("Consumer groups of Apache Kafka from kubectl: lag, plan and apply offset resets, export offsets")
        .after_help(
            "Connect with --cluster NAME: a KafkaCluster of the current context's namespace (or -n/--namespace, \
             --context, --kubeconfig, as for kubectl), or with --bootstrap-server.",
        )
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommands(subcommands);
    if command.get_version().is_some() {
        plugin = plugin.version(env!("CARGO_PKG_VERSION"));
    }
    for arg in command
        .get_arguments()
        .filter(|a| !matches!(a.get_id().as_str(), "help" | "version"))
    {
        plugin = plugin.arg(arg.clone());
    }
    plugin
}

/// Whether `error` is about one of the operator's commands given to the plugin: it then says so.
pub fn operator_command_error(error: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if error.kind() != ErrorKind::InvalidSubcommand {
        return None;
    }
    match error.get(ContextKind::InvalidSubcommand) {
        Some(ContextValue::String(name)) if matches!(name.as_str(), "run" | "broker" | "crds") => Some(format!(
            "'{name}' is a command of the operator's binary (kafka-group-operator {name}), not of {PLUGIN_USAGE_NAME}"
        )),
        _ => None,
    }
}

/// Whether a subcommand is one of the plugin's.
pub fn is_plugin_command(name: &str) -> bool {
    PLUGIN_COMMANDS.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plugin_is_recognised_by_the_basename_of_argv0() {
        for yes in [
            "kubectl-kafkagroups",
            "/usr/local/bin/kubectl-kafkagroups",
            "krew/bin/kubectl-kafkagroups.exe",
        ] {
            assert!(invoked_as_plugin(Some(OsStr::new(yes))), "{yes}");
        }
        for no in ["kafka-group-operator", "/bin/kubectl-kafkagroups-old", "kubectl"] {
            assert!(!invoked_as_plugin(Some(OsStr::new(no))), "{no}");
        }
        assert!(!invoked_as_plugin(None));
    }

    #[test]
    fn the_plugin_leaves_out_the_operator_commands_and_rewrites_examples() {
        let base = clap::Command::new("kafka-group-operator")
            .subcommand(clap::Command::new("run"))
            .subcommand(clap::Command::new("lag").long_about("Examples:\n  kafka-group-operator lag -b kafka:9092"));
        let mut plugin = plugin_command(base, "kafka-group-operator");
        plugin.build();
        assert!(plugin.find_subcommand("run").is_none());
        let lag = plugin.find_subcommand("lag").expect("lag");
        assert!(!lag.is_hide_set());
        assert_eq!(
            lag.get_long_about().map(ToString::to_string).as_deref(),
            Some("Examples:\n  kubectl kafkagroups lag -b kafka:9092")
        );
        assert_eq!(plugin.get_bin_name(), Some("kubectl kafkagroups"));
    }
}
