"""Reminders (预约): shoppers subscribe to an upcoming sale and are notified, once each,
SECKILL_REMINDER_LEAD_SECONDS before it starts (app/flows/reminders.py delivers)."""
