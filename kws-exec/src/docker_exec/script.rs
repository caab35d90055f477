//! The shell the armed process runs, and the one line the job's source travels in.

use crate::{
    language::Language,
    sandbox::{WORK_DIR, WRITABLE},
};

/// The armed process: wipe and check (only shell built-ins unless something is left), say
/// ready, read the source line (`printf %b` escapes), write it, compile, run. `read` takes
/// the line byte by byte, so the rest of stdin is the program's.
pub(crate) fn armed_script(language: &Language) -> String {
    let file = shell_quote(&language.source_file);
    let run = shell_words(&language.run);
    let compile = language
        .compile
        .as_ref()
        .map(|c| format!("{} </dev/null || exit $?\n", shell_words(c)))
        .unwrap_or_default();
    format!(
        "{wipe}\necho kws-ready\nIFS= read -r kws_source || exit 125\ncd {WORK_DIR} || exit 125\n\
         printf %b \"$kws_source\" > {file} || exit 125\nunset kws_source\n{compile}exec {run}",
        wipe = wipe_script()
    )
}

/// Escapes a source for the armed process's `printf %b`: backslash and newline only (NUL is
/// refused at submit), so the source fits on one line and comes back byte for byte.
pub(crate) fn source_line(source: &str) -> Vec<u8> {
    let mut line = Vec::with_capacity(source.len() + 16);
    for byte in source.bytes() {
        match byte {
            b'\\' => line.extend_from_slice(b"\\\\"),
            b'\n' => line.extend_from_slice(b"\\n"),
            other => line.push(other),
        }
    }
    line.push(b'\n');
    line
}

fn shell_words(words: &[String]) -> String {
    words.iter().map(|w| shell_quote(w)).collect::<Vec<_>>().join(" ")
}

fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Wipes every writable path, then fails unless each is empty and no System V IPC object is
/// left. Runs as the job's uid, so it can delete all the job made (making it writable first
/// only when a plain `rm` could not: one process fewer per job in the common case).
/// Globs and `[` are built-ins: a clean sandbox is checked without starting a process.
fn wipe_script() -> String {
    let dirs = WRITABLE.join(" ");
    format!(
        r#"for d in {dirs}; do
  [ -d "$d" ] || continue
  for f in "$d"/* "$d"/.[!.]* "$d"/..?*; do
    if [ -e "$f" ] || [ -L "$f" ]; then
      rm -rf "$d"/* "$d"/.[!.]* "$d"/..?* 2>/dev/null || {{
        chmod -R u+rwx "$d"/* "$d"/.[!.]* "$d"/..?* 2>/dev/null
        rm -rf "$d"/* "$d"/.[!.]* "$d"/..?* 2>/dev/null
      }}
      break
    fi
  done
  for f in "$d"/* "$d"/.[!.]* "$d"/..?*; do
    if [ -e "$f" ] || [ -L "$f" ]; then echo "left in $d: $f"; exit 1; fi
  done
done
for f in shm sem msg; do
  [ -r /proc/sysvipc/$f ] || continue
  {{ read -r _ && read -r _; }} < /proc/sysvipc/$f && {{ echo "System V $f objects left"; exit 1; }}
done"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_quotes_the_language_and_never_holds_user_input() {
        let mut language = Language::python3();
        language.source_file = "it's.py".to_owned();
        language.compile = Some(vec!["cc".into(), "-o".into(), "a b".into()]);
        let script = armed_script(&language);
        assert!(script.contains(r"> 'it'\''s.py'"), "{script}");
        assert!(script.contains("'cc' '-o' 'a b' </dev/null || exit $?"), "{script}");
        assert!(script.ends_with("exec 'python3' '-I' '-S' '-u' 'main.py'"), "{script}");
        assert!(script.find("echo kws-ready") < script.find("read -r kws_source"), "{script}");
    }

    #[test]
    fn source_lines_escape_backslash_and_newline_only() {
        assert_eq!(source_line("a\\n\nb%s\\c"), b"a\\\\n\\nb%s\\\\c\n".to_vec());
    }
}
