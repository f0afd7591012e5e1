-- URL helpers (require "url").
local url = {}

--- Percent-encode `s` for a query string value.
---@param s string
---@return string
function url.encode(s)
  return (string.gsub(s, "[^%w%-_%.~]", function(c)
    return string.format("%%%02X", string.byte(c))
  end))
end

return url
