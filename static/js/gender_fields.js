// Body questions that make no sense for the chosen gender (their inputs carry data-not-for,
// companions/forms.py) are hidden while such a gender is chosen. Without this script they stay
// visible, and the server ignores their answer for that gender.
for (const form of document.querySelectorAll("form")) {
  const marked = [...form.querySelectorAll("[data-not-for]")];
  const genders = form.querySelectorAll('input[name="gender"], select[name="gender"]');
  if (!marked.length || !genders.length) continue;
  const show = () => {
    const gender = form.elements.gender.value;
    for (const input of marked) {
      const question = input.closest("fieldset, .field") || input;
      question.hidden = input.dataset.notFor.split(" ").includes(gender);
    }
  };
  for (const input of genders) input.addEventListener("change", show);
  show();
}
