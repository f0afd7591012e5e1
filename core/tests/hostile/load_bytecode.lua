-- Hostile: loading bytecode made with string.dump
return { route = function(conversation, candidates, ctx)
  return load(string.dump(function() return 1 end), nil, 'b')()
end }
