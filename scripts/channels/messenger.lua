-- Facebook Messenger channel adapter, on Meta's Messenger Platform formats.
-- The host checks X-Hub-Signature-256 natively before calling inbound;
-- this script does the subscription handshake, turns webhook events into
-- customer messages and agent replies into Send API requests.
local url = require "url"

local M = {}

local HOUR = 3600 * 1000
local DAY = 24 * HOUR

-- Settings (from the tenant configuration): verify_token, page_id,
-- page_name, access_token, graph_api_base, graph_api_version, and
-- appsecret_proof (computed by the host, which keeps the app secret).

--- GET subscription handshake: hub.challenge when the token matches.
---@param request sb.Request
---@param ctx sb.ChannelContext
function M.verify(request, ctx)
  if request.method ~= "GET" then return nil end
  local q = request.query
  if q["hub.mode"] == "subscribe"
    and q["hub.challenge"] ~= nil
    and sb.secure_compare(q["hub.verify_token"] or "", ctx.settings.verify_token) then
    return { status = 200, body = q["hub.challenge"] }
  end
  return { status = 403, body = '{"error":"verification failed"}', content_type = "application/json" }
end

local PLACEHOLDERS = {
  image = "[image]", video = "[video]", audio = "[audio]", file = "[file]",
  location = "[location]", fallback = "[link]", template = "[template]",
  sticker = "[sticker]", reel = "[reel]", ig_reel = "[reel]",
}

local function text_of(message)
  local parts = {}
  if type(message.text) == "string" and message.text ~= "" then
    parts[#parts + 1] = message.text
  end
  if type(message.attachments) == "table" then
    for _, a in ipairs(message.attachments) do
      local kind = type(a) == "table" and a.type or nil
      if message.sticker_id ~= nil and kind == "image" then kind = "sticker" end
      parts[#parts + 1] = PLACEHOLDERS[kind] or "[attachment]"
    end
  end
  return table.concat(parts, " ")
end

local function str(v) if type(v) == "string" and v ~= "" then return v end return nil end
local function num(v) if type(v) == "number" then return v end return nil end

--- Meta's attachment payloads as the host's attachments: media and files
--- by `payload.url` (the host fetches them), stickers, `fallback` links
--- with their title, shared locations with their coordinates.
local function attachments_of(message)
  local out = {}
  if type(message.attachments) ~= "table" then return out end
  for _, a in ipairs(message.attachments) do
    if type(a) == "table" and #out < 10 then
      local p = type(a.payload) == "table" and a.payload or {}
      local kind = a.type
      if kind == "image" and (p.sticker_id ~= nil or message.sticker_id ~= nil) then kind = "sticker" end
      if kind == "image" or kind == "video" or kind == "audio" or kind == "file" or kind == "sticker" then
        out[#out + 1] = { type = kind, url = str(p.url), title = str(a.title) }
      elseif kind == "location" then
        local c = type(p.coordinates) == "table" and p.coordinates or {}
        out[#out + 1] = { type = "location", latitude = num(c.lat), longitude = num(c.long), title = str(a.title) }
      elseif kind == "fallback" then
        out[#out + 1] = { type = "link", url = str(p.url) or str(a.url) or str(a.URL), title = str(a.title) or str(p.title) }
      end
    end
  end
  return out
end

--- Webhook POST: one customer message per messaging event; echoes,
--- deliveries, reads and reactions are ignored.
---@param request sb.Request
---@param ctx sb.ChannelContext
function M.inbound(request, ctx)
  local ok, payload = pcall(sb.json.decode, request.body)
  if not ok or type(payload) ~= "table" or payload.object ~= "page" then
    return {
      events = {},
      response = { status = 404, body = '{"error":"not a page event"}', content_type = "application/json" },
    }
  end
  local events = {}
  -- The host drops events of the wrong shape before this script sees them;
  -- the type checks here keep the script safe on its own too (a sender id
  -- that is not a string is never turned into a customer id).
  local entries = type(payload.entry) == "table" and payload.entry or {}
  for _, entry in ipairs(entries) do
    local page = type(entry) == "table" and tostring(entry.id or "") or ""
    if page == ctx.settings.page_id then
      local messaging = type(entry.messaging) == "table" and entry.messaging or {}
      for _, ev in ipairs(messaging) do
        local sender = type(ev) == "table" and type(ev.sender) == "table" and ev.sender.id or nil
        if type(sender) ~= "string" or sender == "" then sender = nil end
        local text, mid, attachments, quick_reply
        if sender == nil then
          -- wrong shape: skipped
        elseif type(ev.message) == "table" and not ev.message.is_echo then
          text = text_of(ev.message)
          mid = ev.message.mid
          attachments = attachments_of(ev.message)
          -- A quick-reply tap: the text is shown, the payload kept for routing.
          if type(ev.message.quick_reply) == "table" then quick_reply = str(ev.message.quick_reply.payload) end
        elseif type(ev.postback) == "table" then
          local p = ev.postback
          text = type(p.title) == "string" and p.title or (type(p.payload) == "string" and p.payload or nil)
          mid = p.mid
        end
        if type(mid) ~= "string" then mid = nil end
        if sender ~= nil and text ~= nil and text ~= "" then
          events[#events + 1] = {
            type = "message",
            id = mid,
            customer = sender,
            text = text,
            entry_point = page,
            sent_at = type(ev.timestamp) == "number" and ev.timestamp or nil,
            cad = { messenger_page = ctx.settings.page_name, messenger_psid = sender, messenger_quick_reply = quick_reply },
            attachments = attachments,
          }
        end
      end
    else
      sb.log.warn("ignoring an entry for another page")
    end
  end
  return { events = events, response = { status = 200, body = "EVENT_RECEIVED" } }
end

--- Agent reply → Send API request. Within 24 hours of the customer's last
--- message (by Meta's timestamp): RESPONSE; within 7 days, when the page
--- may use the HUMAN_AGENT tag (`human_agent_tag`, granted by Meta's App
--- Review): the tag; past that the customer cannot be reached.
---@param message sb.OutboundMessage
---@param ctx sb.OutboundContext
function M.outbound(message, ctx)
  local s = ctx.settings
  local last = ctx.last_customer_message_at
  local age = last and (ctx.now - last) or math.huge
  local body = { recipient = { id = message.customer }, message = { text = message.text } }
  if age <= DAY then
    body.messaging_type = "RESPONSE"
  elseif age <= 7 * DAY and s.human_agent_tag == "true" then
    body.messaging_type = "MESSAGE_TAG"
    body.tag = "HUMAN_AGENT"
  elseif age <= 7 * DAY then
    return { refuse = "the customer's last Messenger message is more than 24 hours old and this page may not use the HUMAN_AGENT tag (human_agent_tag): Meta no longer lets the page reply" }
  else
    return { refuse = "the customer's last Messenger message is more than 7 days old: Meta no longer lets the page reply" }
  end
  local target = s.graph_api_base .. "/" .. s.graph_api_version .. "/me/messages?access_token=" .. url.encode(s.access_token)
  -- Meta's "Securing Graph API Requests": every call carries the proof.
  if type(s.appsecret_proof) == "string" and s.appsecret_proof ~= "" then
    target = target .. "&appsecret_proof=" .. url.encode(s.appsecret_proof)
  end
  return {
    method = "POST",
    url = target,
    headers = { ["content-type"] = "application/json" },
    body = body,
  }
end

M.tests = {
  windows = function()
    local ctx = { now = 10 * DAY, settings = { graph_api_base = "http://g", graph_api_version = "v21.0", access_token = "a b" } }
    local m = { customer = "1", text = "hi" }
    ctx.last_customer_message_at = ctx.now - HOUR
    local r = M.outbound(m, ctx)
    assert(r.body.messaging_type == "RESPONSE", "within 24 h")
    assert(r.url == "http://g/v21.0/me/messages?access_token=a%20b", r.url)
    ctx.settings.appsecret_proof = "00ff"
    r = M.outbound(m, ctx)
    assert(r.url == "http://g/v21.0/me/messages?access_token=a%20b&appsecret_proof=00ff", r.url)
    ctx.last_customer_message_at = ctx.now - 2 * DAY
    assert(M.outbound(m, ctx).refuse ~= nil, "past 24 h without the HUMAN_AGENT tag")
    ctx.settings.human_agent_tag = "true"
    r = M.outbound(m, ctx)
    assert(r.body.messaging_type == "MESSAGE_TAG" and r.body.tag == "HUMAN_AGENT", "within 7 days")
    ctx.last_customer_message_at = ctx.now - 8 * DAY
    assert(M.outbound(m, ctx).refuse ~= nil, "past 7 days")
  end,
  wrong_shapes = function()
    local ctx = { settings = { page_id = "1000", page_name = "P" } }
    local body = [[{"object":"page","entry":[{"id":"1000","messaging":[
      {"sender":{"id":{"x":1}},"message":{"text":"a"}},
      {"sender":{"id":42},"message":{"text":"b"}},
      {"sender":"s","message":{"text":"c"}},
      {"sender":{"id":"7"},"message":"d"},
      {"sender":{"id":"8"},"postback":{"title":{}}},
      5,
      {"sender":{"id":"9"},"message":{"mid":"m9","text":"ok"}}]}]}]]
    local r = M.inbound({ body = body }, ctx)
    assert(#r.events == 1 and r.events[1].customer == "9", "only the good event")
    r = M.inbound({ body = [[{"object":"page","entry":{"id":1}}]] }, ctx)
    assert(#r.events == 0 and r.response.status == 200, "entry not a list")
  end,
  attachment_shapes = function()
    local list = attachments_of({ sticker_id = 369239263222822, attachments = {
      { type = "image", payload = { url = "https://cdn/s.png", sticker_id = 369239263222822 } },
      { type = "location", title = "Home", payload = { coordinates = { lat = 48.8566, long = 2.3522 } } },
      { type = "fallback", title = "A page", payload = { url = "https://example.com/a" } },
      { type = "fallback", title = "Old shape", URL = "https://example.com/b", payload = nil },
      { type = "file", payload = { url = "https://cdn/f.pdf" } },
    } })
    assert(#list == 5)
    assert(list[1].type == "sticker" and list[1].url == "https://cdn/s.png")
    assert(list[2].type == "location" and list[2].latitude == 48.8566 and list[2].longitude == 2.3522)
    assert(list[3].type == "link" and list[3].title == "A page" and list[3].url == "https://example.com/a")
    assert(list[4].url == "https://example.com/b")
    assert(list[5].type == "file")
  end,
  attachments = function()
    assert(text_of({ attachments = { { type = "image" } } }) == "[image]")
    assert(text_of({ text = "look", attachments = { { type = "file" } } }) == "look [file]")
  end,
}

return M
