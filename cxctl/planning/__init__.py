"""Who is asked what and when: solicitation rules, schedules, the plan engine, reminders, explain."""
