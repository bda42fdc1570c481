//! Compile tests: one rejected case per rule of `#[endpoint]`, each with the exact error it
//! reports (the `.stderr` beside it). The cases use stand-ins for the SDK's types, so this
//! compiles the macro alone; what the macro accepts is compiled with the SDK's own tests
//! (`facturapi-sdk/tests/endpoint_forms.rs`).

#[test]
fn ui() {
    trybuild::TestCases::new().compile_fail("tests/ui/fail/*.rs");
}
