//! What `kws` prints: tables, JSON, QR codes, and writes to stdout that notice a closed pipe.

use std::io::{ErrorKind, Write};

use serde_json::Value;

use super::client::CliError;

/// `rows` under `headers`, each column as wide as its widest cell, two spaces apart; every
/// line ends with `\n`.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            if i + 1 < row.len() {
                let pad = widths.get(i).copied().unwrap_or(0).saturating_sub(cell.chars().count());
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The value at the JSON pointer `pointer` of `v` as a cell: strings as they are, numbers
/// and booleans as JSON, `-` for null or missing.
pub fn cell(v: &Value, pointer: &str) -> String {
    match v.pointer(pointer) {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// `v` as indented JSON, ending with `\n`.
pub fn json(v: &Value) -> String {
    let mut text = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    text.push('\n');
    text
}

/// `text` as a QR code for a terminal, two modules per character in Unicode half blocks,
/// drawn light on dark (a terminal's text is light on a dark background), ending with `\n`.
pub fn qr(text: &str) -> Result<String, CliError> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::new(text.as_bytes())
        .map_err(|e| CliError::local(format!("cannot make a QR code of the config: {e}")))?;
    let mut image = code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build();
    image.push('\n');
    Ok(image)
}

/// Writes `text` to stdout and flushes it (stream output goes out as it comes); a closed
/// pipe is [`CliError::BrokenPipe`].
pub fn out(text: &str) -> Result<(), CliError> {
    write_to(&mut std::io::stdout().lock(), text)
}

/// Writes `text` to stderr and flushes it.
pub fn err(text: &str) -> Result<(), CliError> {
    write_to(&mut std::io::stderr().lock(), text)
}

fn write_to(w: &mut impl Write, text: &str) -> Result<(), CliError> {
    w.write_all(text.as_bytes()).and_then(|()| w.flush()).map_err(|e| match e.kind() {
        ErrorKind::BrokenPipe => CliError::BrokenPipe,
        _ => CliError::local(format!("cannot write the output: {e}")),
    })
}

/// Prints `text` as a line on stdout.
pub fn line(text: &str) -> Result<(), CliError> {
    out(&format!("{text}\n"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn tables_align_their_columns() {
        let rows = vec![
            vec!["web".to_owned(), "running".to_owned(), "3".to_owned()],
            vec!["database-1".to_owned(), "-".to_owned(), "12".to_owned()],
        ];
        let want =
            "NAME        STATE    VERSION\nweb         running  3\ndatabase-1  -        12\n";
        assert_eq!(table(&["NAME", "STATE", "VERSION"], &rows), want);
        assert_eq!(table(&["NAME"], &[]), "NAME\n");
    }

    #[test]
    fn cells_read_pointers() {
        let v = json!({"name": "web", "version": 3, "status": null, "spec": {"ok": true}});
        assert_eq!(cell(&v, "/name"), "web");
        assert_eq!(cell(&v, "/version"), "3");
        assert_eq!(cell(&v, "/status/state"), "-");
        assert_eq!(cell(&v, "/spec/ok"), "true");
    }

    #[test]
    fn a_qr_code_is_half_blocks() {
        let code = qr("[Interface]\nPrivateKey = x\n").expect("qr");
        assert!(code.contains('█') || code.contains('▀'), "{code}");
        let lines: Vec<_> = code.lines().collect();
        let width = lines[0].chars().count();
        assert!(lines.iter().all(|l| l.chars().count() == width));
    }
}
