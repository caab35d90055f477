//! Conveniences over any provisioner: the entry points that take names as strings, as a
//! dashboard receives them.

use kws_core::{DnsLabel, OwnerId, ParseError};

use crate::{Credentials, DatabaseProvisioner, Error};

/// Parses a name as given by a user: a DNS label that is already lowercase.
///
/// `DnsLabel` itself accepts uppercase and lowercases it; a database name is shown back in
/// connection URLs and SQL, so here a name must be written as it will appear.
pub fn parse_name(what: &'static str, raw: &str) -> Result<DnsLabel, Error> {
    let label = DnsLabel::parse(raw).map_err(|e| ParseError { what, ..e })?;
    if label.as_str() != raw {
        return Err(Error::Uppercase {
            what,
            value: raw.escape_debug().to_string(),
            lowercase: label.as_str().to_owned(),
        });
    }
    Ok(label)
}

/// String-taking forms of the provisioner's operations, for every [`DatabaseProvisioner`].
#[async_trait::async_trait]
pub trait DatabaseProvisionerExt: DatabaseProvisioner {
    /// [`DatabaseProvisioner::create`] with the owner and the name parsed by [`parse_name`];
    /// a bad name is an error before anything is touched.
    async fn create_named(&self, owner: &str, name: &str) -> Result<Credentials, Error> {
        let owner = OwnerId::from(parse_name("owner id", owner)?);
        let name = parse_name("database name", name)?;
        self.create(&owner, &name).await
    }

    /// [`DatabaseProvisioner::drop_database`] with the owner and the name parsed by
    /// [`parse_name`].
    async fn drop_named(&self, owner: &str, name: &str) -> Result<(), Error> {
        let owner = OwnerId::from(parse_name("owner id", owner)?);
        let name = parse_name("database name", name)?;
        self.drop_database(&owner, &name).await
    }
}

impl<P: DatabaseProvisioner + ?Sized> DatabaseProvisionerExt for P {}

#[cfg(test)]
mod tests {
    use kws_core::Rule;

    use super::*;

    #[test]
    fn hostile_names_are_refused_with_the_rule_they_break() {
        for raw in ["x\"; DROP ROLE postgres; --", "a'b", "a b", "", "a/b", "a\0b", "a$b", "a\nb"] {
            match parse_name("database name", raw) {
                Err(Error::InvalidName(e)) => assert_eq!(e.what, "database name"),
                other => panic!("{raw:?}: {other:?}"),
            }
        }
        let long = "a".repeat(64);
        match parse_name("database name", &long) {
            Err(Error::InvalidName(e)) => assert_eq!(e.rule, Rule::TooLong { len: 64, max: 63 }),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn uppercase_is_refused_and_the_lowercase_form_suggested() {
        match parse_name("database name", "Shop") {
            Err(Error::Uppercase { value, lowercase, .. }) => {
                assert_eq!((value.as_str(), lowercase.as_str()), ("Shop", "shop"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse_name("database name", "shop-1").map(|l| l.to_string()).ok(),
            Some("shop-1".into())
        );
    }
}
