-- Hostile: a finalizer that loops, run at a later collection
return { route = function(conversation, candidates, ctx)
  for i = 1, 100 do setmetatable({}, { __gc = function() while true do end end }) end
  error('finalizers planted')
end }
