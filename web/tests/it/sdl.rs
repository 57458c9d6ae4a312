//! The committed SDL (`web/schema.graphql`) is the schema's: a change to the schema must come
//! with its SDL, so API consumers see it in review.

use std::path::Path;

#[test]
fn committed_sdl_matches_the_schema() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema.graphql");
    let sdl = web::schema::sdl();
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != sdl {
        std::fs::write(&path, &sdl).unwrap();
        panic!(
            "{} was stale and has been rewritten; review and commit it",
            path.display()
        );
    }
}
