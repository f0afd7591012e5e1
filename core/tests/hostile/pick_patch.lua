-- Hostile: replacing a host function for the next caller
return { route = function(conversation, candidates, ctx)
  sb.pick.longest_idle = function() return candidates[1] end
  return candidates[1].id
end }
