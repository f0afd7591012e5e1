-- Hostile: an infinite loop inside an __index metamethod
return { route = function(conversation, candidates, ctx)
  local t = setmetatable({}, { __index = function() while true do end end })
  return t.x
end }
