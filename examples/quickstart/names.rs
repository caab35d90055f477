//! The vocabulary: user strings become names only through validated types.

use kws::core::{DnsLabel, Domain, Hostname, IfName, JobId, OwnerId};

pub(crate) fn show() -> Result<(), Box<dyn std::error::Error>> {
    println!("== names (kws-core)");
    let domain = Domain::parse("kwscloud.in")?;
    let owner = OwnerId::parse("Alice")?;
    let app = Hostname::new(DnsLabel::parse("Blog")?, &domain)?;
    println!("owner {owner}, app host {app}, bridge {}", IfName::parse("kws-br0")?);
    println!("a job id (time-sortable): {}", JobId::new());
    for hostile in ["a;b", "x..y", "-a", &"a".repeat(64), "a\nb", "ü", ""] {
        match DnsLabel::parse(hostile) {
            Ok(label) => return Err(format!("hostile name accepted: {label}").into()),
            Err(e) => println!("refused: {e}"),
        }
    }
    println!();
    Ok(())
}
