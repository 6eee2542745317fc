//! Template directories into images: the `e2b.toml` and Dockerfile of a template directory,
//! the image store (content-addressed blobs, unpacked layer directories shared by every
//! template), pulls from OCI registries, RUN steps in build sandboxes, and the `start_cmd`
//! snapshot. The builder returns what it built as values; the server persists them.
//! Contract: `README.md`.
pub mod build;
pub mod dockerfile;
pub mod registry;
pub mod store;
pub mod template_dir;
