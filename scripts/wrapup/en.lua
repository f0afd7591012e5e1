-- Wrap-up reasons in English, for every queue; billing has its own list.
return {
  reasons = {
    { code = "resolved", label = "Resolved" },
    { code = "follow_up", label = "Follow-up needed" },
    { code = "transferred", label = "Transferred" },
    { code = "no_response", label = "No response from customer" },
    { code = "other", label = "Other" },
  },
  queues = {
    billing = {
      { code = "refund", label = "Refund issued" },
      { code = "invoice_explained", label = "Invoice explained" },
      { code = "payment_plan", label = "Payment plan agreed" },
      { code = "other", label = "Other" },
    },
  },
}
