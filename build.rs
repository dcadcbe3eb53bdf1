//! `sqlx::migrate!` embeds `migrations/` when the crate compiles, and Cargo does not know it
//! reads them: a migration added or changed would not reach the binary until some source
//! file changed too.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
