-- Records of paid tool calls are pruned once charged or released and older than
-- `[plugin] charge_retention_days`: the prune reads them by age.
CREATE INDEX plugin_tool_charges_created ON plugin_tool_charges (created_at);
