//! Domain validation that CEL cannot express: the check characters of national identifier codes
//! and the consistency of a department's identity. Pure functions; the operator reports a failure
//! as a condition with the reason [`IdentityProblem::reason`].

pub mod credit_code;
pub mod region_code;
pub mod resident_id;

use crate::department_cloud::DepartmentIdentity;

pub use credit_code::CreditCodeError;
pub use region_code::RegionCodeError;
pub use resident_id::ResidentIdError;

/// Why a department's identity is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityProblem {
    /// The unified social credit code is malformed or its check character is wrong.
    #[error("spec.department.creditCode: {0}")]
    CreditCode(#[from] CreditCodeError),
    /// The region code is not a GB/T 2260 code.
    #[error("spec.department.regionCode: {0}")]
    RegionCode(#[from] RegionCodeError),
    /// The region code does not fit the administrative level.
    #[error(
        "spec.department.regionCode: {region_code} is a {actual} code but the department is {declared}"
    )]
    LevelMismatch {
        /// The region code given.
        region_code: String,
        /// The level the region code belongs to.
        actual: &'static str,
        /// The level declared in the spec.
        declared: &'static str,
    },
}

impl IdentityProblem {
    /// The CamelCase reason used in conditions and events.
    pub fn reason(&self) -> &'static str {
        match self {
            IdentityProblem::CreditCode(_) => "InvalidCreditCode",
            IdentityProblem::RegionCode(_) => "InvalidRegionCode",
            IdentityProblem::LevelMismatch { .. } => "RegionLevelMismatch",
        }
    }
}

/// Checks a department's identity: the credit code's check characters, the region code's
/// format, and that the region code belongs to the declared administrative level.
pub fn validate_department_identity(identity: &DepartmentIdentity) -> Result<(), IdentityProblem> {
    credit_code::validate(&identity.credit_code)?;
    let region = region_code::RegionCode::parse(&identity.region_code)?;
    let actual = region.level();
    if actual != identity.level {
        return Err(IdentityProblem::LevelMismatch {
            region_code: identity.region_code.clone(),
            actual: actual.as_str(),
            declared: identity.level.as_str(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::AdministrativeLevel;

    fn identity(code: &str, level: AdministrativeLevel, region: &str) -> DepartmentIdentity {
        DepartmentIdentity {
            name: "测试局".into(),
            credit_code: code.into(),
            level,
            region_code: region.into(),
        }
    }

    #[test]
    fn a_consistent_provincial_identity_is_accepted() {
        let code = credit_code::complete("11330000MB000000");
        let id = identity(&code, AdministrativeLevel::Provincial, "330000");
        assert_eq!(validate_department_identity(&id), Ok(()));
    }

    #[test]
    fn a_wrong_check_character_is_reported_with_its_reason() {
        let mut code = credit_code::complete("11330000MB000000");
        let last = if code.ends_with('0') { '1' } else { '0' };
        code.pop();
        code.push(last);
        let problem = validate_department_identity(&identity(
            &code,
            AdministrativeLevel::Provincial,
            "330000",
        ))
        .expect_err("a wrong check character must be refused");
        assert_eq!(problem.reason(), "InvalidCreditCode");
        assert!(
            problem
                .to_string()
                .starts_with("spec.department.creditCode")
        );
    }

    #[test]
    fn a_county_code_for_a_provincial_department_is_a_mismatch() {
        let code = credit_code::complete("11330000MB000000");
        let problem = validate_department_identity(&identity(
            &code,
            AdministrativeLevel::Provincial,
            "330102",
        ))
        .expect_err("county code for a provincial department");
        assert_eq!(problem.reason(), "RegionLevelMismatch");
    }
}
