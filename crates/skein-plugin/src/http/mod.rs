//! The Plugin service's HTTP routes (`/api/v1/plugins/...`, `/api/v1/admin/plugins/...`),
//! one file per audience; every route is listed here.

mod admin;
pub(crate) mod internal;
mod plugins;

use std::sync::Arc;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::PluginService;

use admin::*;
use plugins::*;

/// Every Plugin route.
pub(crate) fn routes(service: Arc<PluginService>) -> OpenApiRouter {
    OpenApiRouter::new()
        // Signed-in users: the market, their own plugins, their choices.
        .routes(routes!(list_plugins, create_private_plugin))
        .routes(routes!(list_tools))
        .routes(routes!(get_plugin, delete_private_plugin))
        .routes(routes!(set_preferences))
        .routes(routes!(conversation_toggles))
        .routes(routes!(set_conversation_toggle))
        // Admins.
        .routes(routes!(admin_list_plugins, admin_create_plugin))
        .routes(routes!(admin_delete_plugin, admin_patch_plugin))
        .routes(routes!(get_settings, put_settings))
        .with_state(service)
}
