-- Hostile: raising a value whose __tostring loops
return { route = function(conversation, candidates, ctx)
  error(setmetatable({}, { __tostring = function() while true do end end }))
end }
