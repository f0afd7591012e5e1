-- Canned responses in English (docs/lua.md, "Role: canned responses").
-- In the desktop's composer, `/` lists them; the text is inserted with
-- {customer_name}, {agent_name} and {queue} filled in, and stays editable.
return {
  { code = "greeting", title = "Greeting",
    text = "Hello {customer_name}, this is {agent_name} from {queue}. How can I help you today?" },
  { code = "one_moment", title = "One moment",
    text = "Thank you, {customer_name}. Let me check that for you; it will take a moment." },
  { code = "order_number", title = "Ask for the order number",
    text = "Could you give me your order number, please? You will find it in your confirmation e-mail." },
  { code = "refund_time", title = "Refund delay", queues = { "billing" },
    text = "Refunds reach your account within 5 to 10 business days after we approve them." },
  { code = "invoice_copy", title = "Copy of an invoice", queues = { "billing" },
    text = "You can download every invoice from your account, under Billing > Invoices." },
  { code = "anything_else", title = "Anything else?",
    text = "Is there anything else I can do for you, {customer_name}?" },
  { code = "goodbye", title = "Goodbye",
    text = "Thank you for contacting us, {customer_name}. Have a nice day!" },
}
