# The Python face of recurrent_gemm.pxd: its step forms. The helpers themselves are
# inline and compiled into each kernel that cimports them; this module only names the
# forms for the wrappers, which pass STEP_FORMS[fastbptt._step_form.step_form(...)] as a
# kernel's step_form (StepForm.STEP_GEMV etc. are the same ints as an enum).

STEP_FORMS = {"gemv": STEP_GEMV, "transposed": STEP_TRANSPOSED, "plain": STEP_PLAIN}
