"""DELRec (distilling SR patterns into soft prompts): prompts, examples, the two stage configs and trainers, and the
end-to-end script. The model itself is ``hfrec.models.delrec`` (self-contained, so ``trust_remote_code`` works)."""
