//! Languages the engine runs: an image, a source file name, a run command and an optional
//! compile or warm command, each language with its own warm pool and queue.

use std::collections::BTreeMap;

use kws_core::DnsLabel;

use crate::error::ConfigError;

/// How to run one language's programs.
///
/// The source is written to `source_file` inside the work dir; `compile` (if any) runs first and
/// a failure there ends the job with its exit code; then `run` runs with the job's stdin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Language {
    /// The language's name, as users pick it (`python3`).
    pub name: DnsLabel,
    /// The image its sandboxes run (`kws-test/python3:1`).
    pub image: String,
    /// File name of the source inside the work dir (`main.py`).
    pub source_file: String,
    /// The command that runs the program, as an argv list.
    pub run: Vec<String>,
    /// A command that builds the program first, as an argv list.
    pub compile: Option<Vec<String>>,
    /// A command that starts the interpreter before the job comes (the supervisor runner
    /// only): it reads the job's source from descriptor 3 until end of file, writes it to
    /// `source_file` and runs it as `run` would. The sandbox holds it while it waits for a
    /// job; a job's latency then leaves out the interpreter's start. Never with `compile`.
    pub warm: Option<Vec<String>>,
    /// Extra environment of the program (`NAME=value`), on top of the engine's minimal one.
    pub env: Vec<String>,
}

impl Language {
    /// Python 3 on `kws-test/python3:1`: isolated mode (`-I`, which also ignores `PYTHON*`
    /// variables), no `site` (`-S`, faster start), unbuffered (`-u`) so output streams as it
    /// is printed. Warm: the same interpreter, started ahead with a loader
    /// ([`PYTHON_WARM_LOADER`]) that runs the source as `run` does.
    pub fn python3() -> Self {
        let flags = ["python3", "-I", "-S", "-u"].map(String::from);
        let warm =
            flags.iter().cloned().chain(["-c", PYTHON_WARM_LOADER, "main.py"].map(String::from));
        Self {
            name: label("python3"),
            image: "kws-test/python3:1".to_owned(),
            source_file: "main.py".to_owned(),
            run: flags.iter().cloned().chain(["main.py".to_owned()]).collect(),
            compile: None,
            warm: Some(warm.collect()),
            env: Vec::new(),
        }
    }

    /// POSIX sh (busybox) on `kws-test/busybox:1`.
    pub fn sh() -> Self {
        Self {
            name: label("sh"),
            image: "kws-test/busybox:1".to_owned(),
            source_file: "main.sh".to_owned(),
            run: vec!["sh".into(), "main.sh".into()],
            compile: None,
            warm: None,
            env: Vec::new(),
        }
    }

    /// Checks what the engine relies on: a plain file name, non-empty commands, `NAME=value`
    /// environment entries.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |why: &str| ConfigError::Language {
            language: self.name.to_string(),
            why: why.to_owned(),
        };
        let file = self.source_file.as_str();
        if file.is_empty()
            || file == "."
            || file == ".."
            || file.contains(['/', '\0', '\n'])
            || file.len() > 64
        {
            return Err(bad(&format!("source file {file:?} is not a plain file name")));
        }
        if self.image.is_empty() || self.image.contains(char::is_whitespace) {
            return Err(bad(&format!("image {:?} is not an image reference", self.image)));
        }
        if self.compile.is_some() && self.warm.is_some() {
            return Err(bad("a warm command cannot follow a compile command"));
        }
        let commands = std::iter::once(&self.run).chain(&self.compile).chain(&self.warm);
        for command in commands {
            if command.is_empty() || command.iter().any(|a| a.contains('\0')) {
                return Err(bad(&format!("command {command:?} is empty or holds a NUL")));
            }
        }
        if let Some(entry) = self.env.iter().find(|e| {
            e.split_once('=').is_none_or(|(k, _)| k.is_empty()) || e.contains(['\0', '\n'])
        }) {
            return Err(bad(&format!("environment entry {entry:?} is not NAME=value")));
        }
        Ok(())
    }
}

/// The Python program behind [`Language::python3`]'s warm command (its file says what it keeps
/// the same as a plain start, and what not).
pub const PYTHON_WARM_LOADER: &str = include_str!("warm_python.py");

/// A label from a constant that is one.
fn label(constant: &'static str) -> DnsLabel {
    DnsLabel::parse(constant).expect("a constant DNS label")
}

/// The languages an engine serves, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Languages(BTreeMap<DnsLabel, Language>);

impl Languages {
    /// A set of languages; every one is validated and names must be unique.
    pub fn new(languages: impl IntoIterator<Item = Language>) -> Result<Self, ConfigError> {
        let mut map = BTreeMap::new();
        for language in languages {
            language.validate()?;
            let name = language.name.clone();
            if map.insert(name.clone(), language).is_some() {
                return Err(ConfigError::Language {
                    language: name.to_string(),
                    why: "configured twice".to_owned(),
                });
            }
        }
        if map.is_empty() {
            return Err(ConfigError::NoLanguages);
        }
        Ok(Self(map))
    }

    /// The language called `name`.
    pub fn get(&self, name: &DnsLabel) -> Option<&Language> {
        self.0.get(name)
    }

    /// All languages, ordered by name.
    pub fn iter(&self) -> impl Iterator<Item = &Language> {
        self.0.values()
    }
}

impl Default for Languages {
    /// python3 and sh, on the images `scripts/images` builds.
    fn default() -> Self {
        Self(
            [Language::python3(), Language::sh()]
                .into_iter()
                .map(|l| (l.name.clone(), l))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        for language in Languages::default().iter() {
            language.validate().expect("default language is valid");
        }
    }

    #[test]
    fn hostile_language_configs_are_refused() {
        let cases: [fn(&mut Language); 12] = [
            (|l| l.source_file = "../main.py".into()),
            (|l| l.source_file = "a/b".into()),
            (|l| l.source_file = String::new()),
            (|l| l.source_file = "..".into()),
            (|l| l.source_file = "a\0b".into()),
            (|l| l.run = Vec::new()),
            (|l| l.compile = Some(vec!["cc\0".into()])),
            (|l| l.warm = Some(Vec::new())),
            (|l| l.compile = Some(vec!["cc".into()])),
            (|l| l.env = vec!["NOEQUALS".into()]),
            (|l| l.env = vec!["=x".into()]),
            (|l| l.image = "a b".into()),
        ];
        for change in cases {
            let mut language = Language::python3();
            change(&mut language);
            let err = language.validate().expect_err("hostile config is refused");
            assert!(err.to_string().contains("python3"), "{err}");
        }
        let twice = Languages::new([Language::sh(), Language::sh()]).expect_err("duplicate");
        assert!(twice.to_string().contains("twice"), "{twice}");
        assert!(matches!(Languages::new([]), Err(ConfigError::NoLanguages)));
    }
}
