//! Shell completion scripts (`podrun completion bash|zsh|fish`, kubectl's command) and
//! man pages (a hidden `generate-man-pages DIR` the package build runs), both generated
//! from the clap command tree so they never drift from the real flags.
use clap::{Args, CommandFactory, Subcommand, ValueEnum};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Subcommand, Debug)]
pub enum DocsCommand {
    /// Output shell completion code for the specified shell (bash, zsh or fish).
    #[command(after_help = COMPLETION_HELP)]
    Completion(CompletionArgs),
    /// Write podrun's man pages (podrun.1, podrun-<command>.1) into DIR.
    #[command(name = "generate-man-pages", hide = true)]
    GenerateManPages(ManArgs),
}

const COMPLETION_HELP: &str = "\
Examples:
  # Load completions into the current bash shell
  source <(podrun completion bash)
  # Install them for every bash session
  podrun completion bash > /etc/bash_completion.d/podrun
  # zsh and fish
  podrun completion zsh > \"${fpath[1]}/_podrun\"
  podrun completion fish > ~/.config/fish/completions/podrun.fish";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Args, Debug)]
pub struct CompletionArgs {
    /// The shell to complete for.
    pub shell: Shell,
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// Directory to write the pages into (created if missing).
    pub dir: PathBuf,
}

pub fn run(cmd: DocsCommand) -> anyhow::Result<i32> {
    match cmd {
        DocsCommand::Completion(a) => {
            let mut out = std::io::stdout().lock();
            match out.write_all(&completion_script(a.shell)) {
                // `podrun completion bash | head` is not an error.
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                _ => Ok(0),
            }
        }
        DocsCommand::GenerateManPages(a) => {
            let written = write_man_pages(&a.dir)?;
            eprintln!("{} man pages written to {}", written, a.dir.display());
            Ok(0)
        }
    }
}

/// The completion script for `shell`.
pub fn completion_script(shell: Shell) -> Vec<u8> {
    let mut cmd = super::Cli::command();
    let mut buf = Vec::new();
    match shell {
        Shell::Bash => {
            clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, "podrun", &mut buf)
        }
        Shell::Zsh => {
            clap_complete::generate(clap_complete::Shell::Zsh, &mut cmd, "podrun", &mut buf)
        }
        Shell::Fish => {
            clap_complete::generate(clap_complete::Shell::Fish, &mut cmd, "podrun", &mut buf)
        }
    }
    buf
}

/// Writes podrun.1 and one podrun-<command>.1 per visible subcommand; returns how many.
pub fn write_man_pages(dir: &Path) -> std::io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    let cmd = super::Cli::command();
    let mut n = 0;
    let mut page = |c: clap::Command, file: String| -> std::io::Result<()> {
        let mut buf = Vec::new();
        clap_mangen::Man::new(c).render(&mut buf)?;
        std::fs::write(dir.join(file), buf)?;
        n += 1;
        Ok(())
    };
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("podrun-{}", sub.get_name());
        page(sub.clone().name(name.clone()), format!("{name}.1"))?;
    }
    page(cmd, "podrun.1".to_string())?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `script` in bash after sourcing the bash completion, returning stdout.
    fn bash_with_completion(script: &str) -> String {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("podrun-compl-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("podrun.bash");
        std::fs::write(&file, completion_script(Shell::Bash)).unwrap();
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!("set -e; source {}; {script}", file.display()))
            .output()
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// What bash would offer for the words of `line` (the last one being completed).
    fn complete(line: &str) -> Vec<String> {
        let script = format!(
            "COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}; read -ra COMP_WORDS <<<\"$COMP_LINE\"; \
             [[ \"$COMP_LINE\" == *' ' ]] && COMP_WORDS+=(''); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
             _podrun podrun \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\""
        );
        bash_with_completion(&script)
            .lines()
            .map(String::from)
            .collect()
    }

    #[test]
    fn the_bash_completion_is_sourceable_and_registers_podrun() {
        let out = bash_with_completion("complete -p podrun");
        assert!(out.contains("-F _podrun"), "{out}");
    }

    #[test]
    fn the_bash_completion_completes_subcommands_and_their_flags() {
        let got = complete("podrun compl");
        assert_eq!(got, vec!["completion".to_string()]);
        let got = complete("podrun ");
        for sub in ["completion", "get", "delete", "run"] {
            assert!(got.iter().any(|w| w == sub), "{sub} missing from {got:?}");
        }
        let got = complete("podrun completion ");
        assert!(got.iter().any(|w| w == "zsh"), "{got:?}");
        let got = complete("podrun --conf");
        assert_eq!(got, vec!["--config".to_string()]);
    }

    #[test]
    fn zsh_and_fish_scripts_name_the_commands() {
        let zsh = String::from_utf8(completion_script(Shell::Zsh)).unwrap();
        assert!(zsh.starts_with("#compdef podrun"), "{}", &zsh[..40]);
        let fish = String::from_utf8(completion_script(Shell::Fish)).unwrap();
        assert!(fish.contains("complete -c podrun"), "{}", &fish[..80]);
    }

    #[test]
    fn man_pages_cover_podrun_and_each_visible_command() {
        let dir = std::env::temp_dir().join(format!("podrun-man-{}", std::process::id()));
        let n = write_man_pages(&dir).unwrap();
        let top = std::fs::read_to_string(dir.join("podrun.1")).unwrap();
        assert!(top.starts_with(".ie \\n(.g .ds Aq"), "{}", &top[..40]);
        assert!(
            top.contains("\\-\\-config"),
            "the global --config is documented"
        );
        assert!(dir.join("podrun-completion.1").exists());
        assert!(!dir.join("podrun-generate-man-pages.1").exists());
        assert!(n > 10, "{n} pages");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
