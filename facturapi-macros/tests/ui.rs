//! Compile tests: what `#[endpoint]` accepts, and one rejected case per rule, each with the
//! exact error it reports (the `.stderr` beside it).

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
