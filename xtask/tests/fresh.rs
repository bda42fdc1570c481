//! The committed generated files are what `cargo xtask codegen` renders now.

#[test]
fn generated_code_is_fresh() {
    let root = xtask::workspace_root();
    let output = xtask::codegen::render(&root).expect("codegen renders");
    let problems = xtask::codegen::stale(&root, &output);
    assert!(problems.is_empty(), "run `cargo xtask codegen` and commit:\n{}", problems.join("\n"));
}
