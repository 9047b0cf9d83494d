//! The User service: accounts, sign-in (passwords, mail, phones, OAuth, two factors), access
//! tokens, invites, the system settings, admin user management and the audit log.

pub(crate) mod accounts;
pub(crate) mod admin;
pub(crate) mod audit;
pub(crate) mod auth;
pub(crate) mod invites;
pub(crate) mod ldap;
pub(crate) mod oauth;
pub(crate) mod passkeys;
pub(crate) mod phone;
pub(crate) mod profile;
pub(crate) mod secrets_at_rest;
pub(crate) mod settings;
pub(crate) mod signin;
pub(crate) mod tokens;
