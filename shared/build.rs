// The migrations are embedded at compile time: rebuild when they change.
fn main() {
    for dir in ["postgres/rmm_sync", "postgres/algapsa", "sqlite/rmm_sync", "sqlite/algapsa"] {
        println!("cargo:rerun-if-changed=../migrations/{dir}");
    }
}
