-- Hostile: patching the shared string metatable
return { route = function(conversation, candidates, ctx)
  getmetatable('').__index = { find = function() return 1 end }
  return candidates[1].id
end }
