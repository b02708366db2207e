//! Misuse of `#[derive(Entity)]` and typed filters is a compile error.
#[test]
fn compile_fail() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
