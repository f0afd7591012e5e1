---@meta
-- LuaLS type definitions of the Switchboard Lua API (docs/lua.md), so
-- editors complete `sb.*` and the role arguments. Not loaded at run time.

---@class sb.Log
---@field info fun(message: string) Log at info level (masked, with file:line). Since 0.1.0.
---@field warn fun(message: string) Log at warn level. Since 0.1.0.
---@field error fun(message: string) Log at error level. Since 0.1.0.

---@class sb.Json
---@field encode fun(value: any): string Encode a table as JSON (1 MiB at most). Since 0.1.0.
---@field decode fun(text: string): any Decode JSON; null becomes nil. Since 0.1.0.

---@class sb.Pick
---@field longest_idle fun(candidates: sb.Agent[], wanted?: string[]): sb.Agent|nil The candidate idle the longest (ties: lower load, then id) having every skill of `wanted`, or nil; scanned by the host. Since 0.4.0.

---@class sb
---@field version string The Lua API version ("0.4.0"). Since 0.1.0.
---@field log sb.Log
---@field pick sb.Pick
---@field json sb.Json
---@field now fun(): integer The host's time for this call, ms since the epoch. Since 0.1.0.
---@field hmac_sha256 fun(key: string, data: string): string Hex HMAC-SHA256. Since 0.1.0.
---@field secure_compare fun(a: string, b: string): boolean Constant-time equality. Since 0.1.0.
---@field mask fun(text: string): string The tenant's masking of `text`. Since 0.1.0.
sb = {}

---A conversation being routed (texts masked when the tenant masks).
---@class sb.Conversation
---@field id integer
---@field queue string
---@field channel string "webchat", "messenger", …
---@field customer string The customer's id on the channel.
---@field customer_name string
---@field source string Page name or entry point.
---@field preview string First customer message (masked).
---@field cad table<string, string> CAD variables.
---@field received_at integer ms since the epoch
---@field queued_at integer ms since the epoch
---@field last_agent string|nil The agent who last handled this customer.

---A candidate agent (read-only).
---@class sb.Agent
---@field id string
---@field name string
---@field load integer Conversations, offers and wrap-ups it holds.
---@field capacity integer
---@field idle_since integer ms since the epoch: smaller = idle longer.
---@field skills string[] Skills as a list.
---@field skill table<string, boolean> Skills as a set: `agent.skill.fr`.

---@class sb.RouteContext
---@field now integer ms since the epoch
---@field generation integer The script generation making the decision.
---@field tenant string

---An inbound HTTP request given to a channel adapter.
---@class sb.Request
---@field method string
---@field path string
---@field query table<string, string>
---@field headers table<string, string> Lower-case names.
---@field body string The raw body.

---@class sb.ChannelContext
---@field now integer
---@field settings table<string, string> The channel's settings from the tenant configuration.

---@class sb.OutboundMessage
---@field conversation integer
---@field customer string
---@field author string The agent's id.
---@field text string

---@class sb.OutboundContext: sb.ChannelContext
---@field last_customer_message_at integer|nil
