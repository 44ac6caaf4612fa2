//! Objects the tests share: valid credit codes and DepartmentClouds over one valid base spec.
//!
//! A fixture is valid for the CRD's schema and rules as it is; a test that needs an invalid one
//! overrides the field it is about, so that the refusal it expects can only come from that field.

use govdc_crds::DepartmentCloud;
use serde_json::{Value, json};

use crate::env::{TEST_LABEL, TestEnv};

/// The first 17 characters of the credit code most fixtures give their department.
const DEFAULT_CREDIT_CODE: &str = "11330000MB000000";

/// A unified social credit code (GB 32100): `first17` with its check character appended.
pub fn credit_code(first17: &str) -> String {
    govdc_crds::validation::credit_code::complete(first17)
}

/// The credit code of the department in [`department_cloud_spec`]'s base.
pub fn default_credit_code() -> String {
    credit_code(DEFAULT_CREDIT_CODE)
}

/// [`default_credit_code`] with a wrong check character: of the right shape, so the CRD's schema
/// admits it, and refused by the operator's GB 32100 check.
pub fn wrong_credit_code() -> String {
    let mut code = default_credit_code();
    let last = code.pop().unwrap_or('0');
    code.push(if last == '0' { '1' } else { '0' });
    code
}

/// A DepartmentCloud's `department`: a provincial department of Zhejiang (region 330000).
pub fn department(name: &str, credit_code: &str) -> Value {
    json!({"name": name, "creditCode": credit_code, "level": "provincial", "regionCode": "330000"})
}

/// A valid DepartmentCloud spec: 浙江省大数据发展管理局 with [`default_credit_code`], in the
/// extranet zone at protection level 3, with one environment `prod`. Each field of `overrides`
/// (a JSON object) replaces the base's field of that name.
pub fn department_cloud_spec(overrides: Value) -> Value {
    let mut spec = json!({
        "department": department("浙江省大数据发展管理局", &default_credit_code()),
        "networkZone": "extranet",
        "protectionLevel": 3,
        "environments": [{"name": "prod"}],
    });
    if let (Value::Object(spec), Value::Object(overrides)) = (&mut spec, overrides) {
        spec.extend(overrides);
    }
    spec
}

/// A DepartmentCloud named `name`, labelled for `env`'s test (so the test's operator takes it and
/// the environment's clean-up deletes it), with [`department_cloud_spec`]`(overrides)`.
pub fn department_cloud(env: &TestEnv, name: &str, overrides: Value) -> DepartmentCloud {
    serde_json::from_value(json!({
        "apiVersion": "govdc.io/v1alpha1", "kind": "DepartmentCloud",
        "metadata": {"name": name, "labels": {TEST_LABEL: env.prefix}},
        "spec": department_cloud_spec(overrides),
    }))
    .unwrap_or_else(|error| panic!("the DepartmentCloud fixture {name}: {error}"))
}
