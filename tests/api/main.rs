//! HTTP, access control, the CLI, install and crash-safety tests: the rules every route keeps, against an
//! in-process server (and the real binary where a process is the point).

#[path = "../common/mod.rs"]
mod common;

mod access;
mod admin_console;
mod alerts;
mod auth;
mod cli;
mod console_api;
mod crash;
mod doctor;
mod fuzz;
mod hardening;
mod install;
mod recordings;
mod recordings_console;
mod scripts_parse;
mod whep_errors;
