-- Hostile: require of a module that is not there, at call time
return { route = function(conversation, candidates, ctx)
  local helper = require 'not_there'
  return helper.pick(candidates)
end }
