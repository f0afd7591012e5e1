-- Hostile: an infinite loop in __tostring, called from C (tostring)
return { route = function(conversation, candidates, ctx)
  return tostring(setmetatable({}, { __tostring = function() while true do end end }))
end }
